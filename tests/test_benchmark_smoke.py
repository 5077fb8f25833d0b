"""The benchmark's --smoke profile runs end to end and writes its outputs with the documented schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_benchmark_smoke_profile(tmp_path):
    script = Path(__file__).resolve().parent.parent / "scripts" / "benchmark.py"
    done = subprocess.run(
        [sys.executable, str(script), "--smoke", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((tmp_path / "out" / "smoke.json").read_text())
    assert {"task", "protocol", "train_rows", "test_rows", "scoring_run_seconds"} <= set(data["meta"])
    rows = data["rows"]
    methods = {(r["method"], r["ratio"]) for r in rows}
    assert methods == {("full", 0.0), ("random", 0.5), ("random", 0.9), ("dual", 0.5), ("dual", 0.9)}
    for row in rows:
        assert {"method", "ratio", "seed", "accuracy", "rows_kept", "train_seconds", "scoring_seconds",
                "selection_seconds"} <= set(row)
        assert 0.0 <= row["accuracy"] <= 1.0
    assert next(r for r in rows if r["method"] == "dual" and r["ratio"] == 0.9)["rows_kept"] == 60
    table = (tmp_path / "out" / "smoke.md").read_text()
    assert "| method | r = 0.5 | r = 0.9 |" in table and "Full data:" in table
    assert (tmp_path / "out" / "smoke.png").stat().st_size > 10_000
    # Resumed after the scoring run is lost (`runs/` is not kept): the old run is kept on record with the number
    # of rows measured from it, and the report says so.
    import shutil

    shutil.rmtree(tmp_path / "work" / "smoke" / "scoring")
    again = subprocess.run(
        [sys.executable, str(script), "--smoke", "--methods", "el2n", "--out", str(tmp_path / "out"),
         "--work", str(tmp_path / "work")], capture_output=True, text=True, timeout=600, check=False,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = json.loads((tmp_path / "out" / "smoke.json").read_text())
    assert len(resumed["rows"]) == 7
    history = resumed["meta"]["scoring_run_history"]
    assert len(history) == 1 and history[0]["rows_before"] == 5
    assert history[0]["scoring_run_seconds"] == data["meta"]["scoring_run_seconds"]
    assert "The scoring run was re-made after the first 5 rows" in (tmp_path / "out" / "smoke.md").read_text()
