"""`HFPruner.compare_with_random` on a benchmark task: is a method's subset better than a random one of the same size?

    python scripts/check_against_random.py --task digits --ratio 0.5 --seeds 1 2 3 4 5
    python scripts/check_against_random.py --task digits --methods default "dual_beta (successive systematic, class quota)"

Reuses `scripts/benchmark.py`'s tasks, pinned protocol and scoring run (`runs/benchmark/<task>/`, made if missing).
Each method's one subset (selection seed 0) and a new random subset per seed are retrained and tested on the task's
test split; one line per method: both sides' mean ± std, the difference and difference / standard error.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchmark  # noqa: E402

from hf_prune import HFPruner  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="digits", choices=sorted(benchmark.TASKS))
    parser.add_argument("--ratio", type=float, default=0.5, help="Fraction of the training rows to remove.")
    parser.add_argument("--methods", nargs="+", default=["default"], help="Row names of scripts/benchmark.py.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--work", default="runs/benchmark")
    cli = parser.parse_args()
    unknown = [m for m in cli.methods if m not in benchmark.METHODS]
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from: {', '.join(benchmark.METHODS)}")

    task = benchmark.make_task(cli.task)
    work = Path(cli.work) / cli.task
    work.mkdir(parents=True, exist_ok=True)
    trainer, _ = benchmark.scoring_run(task, work)
    recipe = benchmark.prune_args(task, str(work / "retrain"), 0)
    for method in cli.methods:
        # As in the benchmark: a ranking that empties a class is measured with the empty class.
        pruner = HFPruner(trainer, allow_empty_classes=True, **benchmark.METHODS[method])
        start = time.perf_counter()
        check = pruner.compare_with_random(cli.ratio, eval_dataset=task.test, model_init=task.model_init,
                                           args=recipe, seeds=cli.seeds, data_collator=task.collator)
        print(f"[{cli.task}] {method}: {check.summary()} ({time.perf_counter() - start:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
