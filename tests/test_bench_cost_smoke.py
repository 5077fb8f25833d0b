"""The scoring-cost benchmark's --smoke profile runs end to end and writes its outputs with the documented schema."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest


SMOKE_PATHS = ["full record", "first 1 epoch", "proxy", "knn 10 %", "final checkpoint", "last 2 checkpoints", "random"]


@pytest.mark.slow
def test_bench_cost_smoke_profile(tmp_path):
    script = Path(__file__).resolve().parent.parent / "scripts" / "bench_cost.py"
    done = subprocess.run(
        [sys.executable, str(script), "--smoke", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((tmp_path / "out" / "cost.json").read_text())
    costs = data["costs"]["smoke"]
    unit = costs["one full training run"]
    assert unit["wall"] > 0 and unit["cpu"] > 0 and 0.0 <= unit["test_accuracy"] <= 1.0
    rows = {row["path"]: row for row in data["rows"]}
    for path in SMOKE_PATHS:
        if path == "random":
            assert path in rows
            continue
        entry = costs[path]
        if "failed" in entry:
            # The smoke task's first epoch and 10 % subset are a few SGD steps from scratch: the library refuses to
            # score a run at chance level, and the path is recorded as giving no subset rather than dropped.
            assert path in ("first 1 epoch", "knn 10 %") and entry["failed"].startswith("ScoreNotComputableError")
            assert path not in rows
        else:
            assert entry["wall"] > 0 and entry["cpu"] > 0 and path in rows
    # The full record and the checkpoint give subsets on any task that trains at all.
    assert {"full record", "final checkpoint", "last 2 checkpoints", "random"} <= set(rows)
    # The proxy is the quarter-width CNN, trained for half the recipe's 2 epochs (at least 2), on the task's rows.
    if "failed" not in costs["proxy"]:
        assert costs["proxy"]["epochs_trained"] == 2 and "quarter of its widths" in costs["proxy"]["proxy"]
    for row in rows.values():
        assert (row["task"], row["ratio"], row["seed"], row["selection_seed"]) == ("smoke", 0.5, 1, 1)
        assert row["rows_kept"] == 300 and 0.0 <= row["accuracy"] <= 1.0 and row["train_seconds"] > 0
    assert rows["final checkpoint"]["info"]["selector"] == "dual_beta"
    # Checkpoints: the reliability of their scores cannot be measured (one prediction per row, or predictions of a
    # model that already trained on the row), so the default does not follow them.
    assert rows["final checkpoint"]["info"]["trust"] == 0.0
    assert rows["last 2 checkpoints"]["info"]["trust"] == 0.0
    table = (tmp_path / "out" / "cost.md").read_text()
    assert "| path | cost counts | cost wall / CPU | r = 0.5 | full − path | p<rand | b/e |" in table
    assert "forward passes only" in table
    assert (tmp_path / "out" / "cost.png").stat().st_size > 10_000
    last = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"scoring_cost=(none|\d+\.\d{3}) worst_delta_vs_full_record=(none|[+-]\d+\.\d{2}) ratios=0\.5",
                        last), last
    # The full record is within its own spread, so on the reference task some path always qualifies.
    assert not last.startswith("scoring_cost=none")
    assert f"Last line of the run: `{last}`" in table


def test_further_first_epochs_paths_are_accepted_and_ordered():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import argparse

    from bench_cost import ordered_paths, path_argument

    assert path_argument("first 4 epochs") == "first 4 epochs" and path_argument("proxy") == "proxy"
    with pytest.raises(argparse.ArgumentTypeError, match="unknown path 'first epochs'"):
        path_argument("first epochs")
    assert ordered_paths({"random", "first 4 epochs", "full record", "first 2 epochs", "first 3 epochs"}) == [
        "full record", "first 2 epochs", "first 3 epochs", "first 4 epochs", "random"]
