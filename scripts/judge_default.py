"""Judge a candidate default on a set of benchmark tasks at once (benchmarks/predeclared/2026-12-03_suite.md).

For every cell (task, ratio) where the candidate has rows: is it below `random` with one-sided Welch p < 0.05, and
how far is its mean below the best mean of the library methods and the candidate itself in that cell (the per-cell
best, any method with at least 3 seeds; rows outside the comparison — the seed-0 draw, the equal-steps diagnostic —
and the benchmark-only variants of scripts/lab_selectors.py are left out, except the candidate, so its gap is never
negative; the `methods` column counts the methods compared, and cells where only the candidate and `random` ran are
named, since their gap is 0 by construction)? The two numbers that judge a candidate: the count of cells below random
and the mean gap over cells.

    python scripts/judge_default.py --candidate default --tasks digits fmnist2k fmnist5k rotten_tomatoes

The last line reads `candidate=<name> cells=<n> below_random=<n> mean_gap=<points> tasks=<names>`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
from scipy import stats


REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark import library_method, outside_comparison  # noqa: E402  (suite_table imports library_method here)


TUNING = ["fmnist", "fmnist40k", "fmnist20k", "fmnist20k_noisy", "fmnist5k", "fmnist2k", "digits", "rotten_tomatoes",
          "rotten_tomatoes_3k"]
CONFIRMATION = ["fmnist_lt", "fmnist_adamw", "trec", "trec_probe"]
# Checks of the frozen default run after it was frozen, as a new user would (no rule is chosen on them):
# benchmarks/predeclared/2026-12-05_new_user_check.md.
NEW_USER = ["rt3_newuser", "fmnist_usercnn"]


def cells(rows: list[dict]) -> dict[tuple[str, float], list[float]]:
    """Accuracies (points) by (method, ratio)."""
    out: dict[tuple[str, float], list[float]] = {}
    for row in rows:
        if row["method"] == "full" or outside_comparison(row["method"]):
            continue
        out.setdefault((row["method"], row["ratio"]), []).append(100.0 * row["accuracy"])
    return out


def below_random_p(candidate: list[float], random: list[float]) -> float:
    """One-sided Welch p-value of `candidate < random`."""
    if len(candidate) < 2 or len(random) < 2:
        return float("nan")
    result = stats.ttest_ind(candidate, random, equal_var=False, alternative="less")
    return float(result.pvalue)


def best_bias(rivals: dict[str, list[float]], draws: int = 2000, seed: int = 0) -> float:
    """Bootstrap estimate of how far the best of several noisy means lies above the best true mean (points).

    The per-cell best is a maximum over many methods measured on 3-5 seeds, so it is biased upwards (the winner's
    curse): resampling every method's seeds with replacement and taking the maximum again, the mean excess over the
    observed maximum estimates that bias (Efron & Tibshirani, *An Introduction to the Bootstrap*, ch. 10). A
    diagnostic next to the pre-declared gap, not a replacement for it.
    """
    rng = np.random.default_rng(seed)
    observed = max(np.mean(v) for v in rivals.values())
    maxima = np.max([[np.mean(rng.choice(v, size=len(v))) for v in rivals.values()] for _ in range(draws)], axis=1)
    return float(np.mean(maxima) - observed)


def recorded_epochs_of_subset(data: dict, ratio: float) -> float | None:
    """`(kept rows / training rows) · E`: how many of the full run's epochs the subset's optimizer steps amount to
    (`E` read from the task's pinned protocol, which trains the subset for the full run's epochs)."""
    match = re.search(r"(\d+) epochs on the \(sub\)set", data["meta"].get("protocol", ""))
    kept = [row["rows_kept"] for row in data["rows"] if row["ratio"] == ratio and row.get("rows_kept")]
    if match is None or not kept:
        return None
    return kept[0] / data["meta"]["train_rows"] * int(match.group(1))


def subset_steps(data: dict, ratio: float) -> float | None:
    """The subset's optimizer steps as the library estimates them: its recorded-epoch share times the full run's
    steps per epoch (`⌈training rows / batch⌉`, the batch read from the task's pinned protocol)."""
    share = recorded_epochs_of_subset(data, ratio)
    match = re.search(r"batch (\d+)", data["meta"].get("protocol", ""))
    if share is None or match is None:
        return None
    return share * -(-data["meta"]["train_rows"] // int(match.group(1)))


def judge(task: str, candidate: str, results: Path, min_seeds: int, same_as: str | None = None,
          within_one_epoch: str | None = None, starved_steps: float | None = None) -> list[dict]:
    """Verdicts for every ratio where `candidate` has `min_seeds` rows. Where it has fewer, `within_one_epoch`'s rows
    are read in the cells where the subset gets at most one epoch of the full run's steps (or, with `starved_steps`,
    at most that many optimizer steps), and `same_as`'s in the others (for a candidate whose selection there is that
    method's by construction; the cells are marked)."""
    path = results / f"{task}.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    by_cell = cells(data["rows"])
    own = {r: v for (m, r), v in by_cell.items() if m == candidate and len(v) >= min_seeds}
    borrowed = {}
    for (m, r), v in by_cell.items():
        if r in own or len(v) < min_seeds:
            continue
        share = recorded_epochs_of_subset(data, r)
        steps = subset_steps(data, r)
        starved = (share is not None and share <= 1.0 + 1e-9) or (
            starved_steps is not None and steps is not None and steps <= starved_steps + 1e-9)
        if (within_one_epoch and starved and m == within_one_epoch) or (
                same_as and m == same_as and not (within_one_epoch and starved)):
            borrowed[r] = (m, v)
    rows_of = {r: m for r, (m, _) in borrowed.items()}
    borrowed = {r: v for r, (_, v) in borrowed.items()}
    verdicts = []
    for ratio, values in sorted({**own, **borrowed}.items()):
        random = by_cell.get(("random", ratio), [])
        rivals = {m: np.mean(v) for (m, r), v in by_cell.items()
                  if r == ratio and len(v) >= 3 and library_method(m)}
        # The candidate is one of the methods compared even when only the benchmark has it (a lab selector): its gap is
        # never negative, as it will not be once it is the library default.
        rivals[candidate] = float(np.mean(values))
        best_method = max(rivals, key=rivals.get)
        others = sorted(set(rivals) - {candidate, "random"})
        p = below_random_p(values, random)
        verdicts.append({"task": task, "ratio": ratio, "mean": float(np.mean(values)), "seeds": len(values),
                         "random": float(np.mean(random)) if random else float("nan"), "p_below_random": p,
                         "below_random": bool(p < 0.05), "best": best_method, "best_mean": float(rivals[best_method]),
                         "gap": float(rivals[best_method] - np.mean(values)), "methods": len(rivals),
                         "swept": bool(others), "rows_of": rows_of.get(ratio, candidate),
                         "best_bias": best_bias({**{m: v for (m, r), v in by_cell.items()
                                                    if r == ratio and len(v) >= 3 and library_method(m)},
                                                 candidate: values})})
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidate", default="default", help="Row name of the candidate in the result files.")
    parser.add_argument("--tasks", nargs="+", default=TUNING, help="Tasks to judge on (default: the tuning tasks).")
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--min-seeds", type=int, default=5, help="Cells with fewer candidate seeds are skipped.")
    parser.add_argument("--same-as", default=None, metavar="METHOD",
                        help="Where the candidate has too few rows, read METHOD's: only for a candidate whose "
                             "selection there is METHOD's by construction (the cells are marked).")
    parser.add_argument("--within-one-epoch", default=None, metavar="METHOD",
                        help="Like --same-as, in the cells where the subset gets at most one epoch of the full run's "
                             "optimizer steps (kept rows × epochs ≤ training rows); --same-as then covers the others.")
    parser.add_argument("--starved-steps", type=float, default=None, metavar="K",
                        help="With --within-one-epoch: also read its rows where the subset gets at most K optimizer "
                             "steps (the full run's steps per epoch times the subset's share of its epochs).")
    cli = parser.parse_args()
    verdicts = [v for task in cli.tasks for v in judge(task, cli.candidate, Path(cli.results), cli.min_seeds,
                                                           cli.same_as, cli.within_one_epoch, cli.starved_steps)]
    print("| task | ratio | candidate | random | p (below random) | methods | best method | best | gap |")
    print("|---|---|---|---|---|---|---|---|---|")
    for v in verdicts:
        mark = " **below**" if v["below_random"] else ""
        via = f" as {v['rows_of']}" if v["rows_of"] != cli.candidate else ""
        print(f"| {v['task']} | {v['ratio']:g} | {v['mean']:.2f} ({v['seeds']}{via}) | {v['random']:.2f} | "
              f"{v['p_below_random']:.3f}{mark} | {v['methods']} | {v['best']} | {v['best_mean']:.2f} | {v['gap']:.2f} |")
    judged = sorted({v["task"] for v in verdicts})
    missing = [t for t in cli.tasks if t not in judged]
    if missing:
        print(f"not judged (no cell with {cli.min_seeds}+ seeds of {cli.candidate!r}): {', '.join(missing)}")
    below = sum(v["below_random"] for v in verdicts)
    gap = float(np.mean([v["gap"] for v in verdicts])) if verdicts else float("nan")
    if verdicts:
        bias = float(np.mean([v["best_bias"] for v in verdicts]))
        print(f"winner's curse: the per-cell best lies {bias:.2f} points above the best true mean on average (bootstrap); "
              f"the gap without it: {gap - bias:.2f}")
    unswept = [v for v in verdicts if not v["swept"]]
    if unswept:
        rest = [v["gap"] for v in verdicts if v["swept"]]
        names = ", ".join(f"{v['task']} {v['ratio']:g}" for v in unswept)
        print(f"{len(unswept)} cell(s) compare the candidate with random only (their gap is 0 by construction: "
              f"{names}); the mean gap over the other "
              f"{len(rest)}: {np.mean(rest) if rest else float('nan'):.2f}")
    print(f"candidate={cli.candidate!r} cells={len(verdicts)} below_random={below} mean_gap={gap:.2f} "
          f"tasks={','.join(judged)}")


if __name__ == "__main__":
    main()
