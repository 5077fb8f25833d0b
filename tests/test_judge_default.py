"""scripts/judge_default.py: the verdict numbers of a candidate default, against values computed by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats


sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from judge_default import judge  # noqa: E402


LAB = "default, late rule without class guard (C5)"  # a benchmark-only selector (dual_beta_unguarded)


def rows(method: str, ratio: float, accuracies: list[float], kept: int) -> list[dict]:
    return [{"method": method, "ratio": ratio, "seed": s, "accuracy": a / 100.0, "rows_kept": kept}
            for s, a in enumerate(accuracies, 1)]


def write_task(tmp_path: Path) -> Path:
    data = {"meta": {"protocol": "SGD, batch 10, 4 epochs on the (sub)set", "train_rows": 100},
            "rows": (rows("random", 0.5, [80, 81, 79, 80, 80], 50) + rows(LAB, 0.5, [85, 86, 84, 85, 85], 50)
                     + rows("el2n", 0.5, [84, 84, 84], 50)
                     + rows("random", 0.9, [70, 71, 69, 70, 70], 10) + rows(LAB, 0.9, [66, 67, 65, 66, 66], 10)
                     + rows("el2n", 0.9, [72, 72, 72], 10) + rows("default", 0.9, [69, 70, 68, 69, 69], 10))}
    (tmp_path / "toy.json").write_text(json.dumps(data))
    return tmp_path


def test_gap_is_to_the_best_of_the_library_and_never_negative(tmp_path):
    results = write_task(tmp_path)
    verdicts = {v["ratio"]: v for v in judge("toy", LAB, results, min_seeds=5)}
    # 0.5: the candidate (85) beats every library method (el2n 84): it is the cell's best, gap 0, not -1.
    assert verdicts[0.5]["best"] == LAB and verdicts[0.5]["gap"] == 0.0
    assert not verdicts[0.5]["below_random"]
    # 0.9: el2n (72) is best; the candidate (66) is 6 points below it and below random (70) beyond chance.
    assert verdicts[0.9]["best"] == "el2n" and np.isclose(verdicts[0.9]["gap"], 6.0)
    p = stats.ttest_ind([66, 67, 65, 66, 66], [70, 71, 69, 70, 70], equal_var=False, alternative="less").pvalue
    assert np.isclose(verdicts[0.9]["p_below_random"], p) and p < 0.05 and verdicts[0.9]["below_random"]


def test_starved_cells_borrow_the_named_rows(tmp_path):
    results = write_task(tmp_path)
    # A candidate with rows at 0.5 only: at 0.9 the subset gets 0.4 of the full run's epochs (10 of 100 rows × 4),
    # so with --within-one-epoch its rows there are `default`'s; at 0.5 (2 epochs) nothing is borrowed.
    data = json.loads((results / "toy.json").read_text())
    data["rows"] = [r for r in data["rows"] if not (r["method"] == LAB and r["ratio"] == 0.9)]
    (results / "toy.json").write_text(json.dumps(data))
    verdicts = {v["ratio"]: v for v in judge("toy", LAB, results, min_seeds=5, within_one_epoch="default")}
    assert verdicts[0.9]["rows_of"] == "default" and np.isclose(verdicts[0.9]["mean"], 69.0)
    assert np.isclose(verdicts[0.9]["gap"], 3.0)
    assert verdicts[0.5]["rows_of"] == LAB


def test_suite_table_lists_tuning_confirmation_and_new_user_tasks_apart_and_marks_losses(tmp_path, monkeypatch):
    import suite_table

    def task(default: list[float]) -> dict:
        return {"meta": {}, "rows": rows("random", 0.5, [80, 81, 79, 80, 80], 50) + rows("default", 0.5, default, 50)
                + rows("el2n", 0.5, [83, 83, 83], 50)}

    monkeypatch.setattr(suite_table, "TUNING", ["a"])
    monkeypatch.setattr(suite_table, "CONFIRMATION", ["b"])
    monkeypatch.setattr(suite_table, "NEW_USER", ["c"])
    for name, default in (("a", [82, 83, 81, 82, 82]), ("b", [81, 80, 81, 80, 81]), ("c", [76, 77, 75, 76, 76])):
        (tmp_path / f"{name}.json").write_text(json.dumps(task(default)))
    lines = suite_table.table(tmp_path, with_name=False).splitlines()[2:]
    assert [line.split(" | ")[0] for line in lines] == ["| `a` (a)", "| **confirmation** `b` (b)", "| **new user** `c` (c)"]
    cells = [line.split(" | ")[2] for line in lines]  # r = 0.5
    assert cells[0] == "82.00 · 80.00 · 83.00" and cells[1] == "80.60 · 80.00 · 83.00"
    assert cells[2] == "76.00 ▼ · 80.00 · 83.00"  # 4 points below random over 5 seeds: p < 0.05
