"""How well score extrapolation (kNN, GCN) reproduces the scores of a full scoring run, and what it costs.

    python scripts/extrapolation_quality.py                           # fmnist20k, 20 % seed subset
    python scripts/extrapolation_quality.py --task fmnist20k --fraction 0.1 0.2

Uses the benchmark's scoring run (`scripts/benchmark.py`, trained on first use) as the reference. For each
training-dynamics score and each extrapolation method it runs the public path
`HFPruner(trainer, method=m, extrapolate=e, extrapolate_fraction=f).compute_score()` (a fresh model trained on the
seed subset, scored there, every row embedded and its score predicted) and reports, against the full run's scores:

* `spearman_all`: rank correlation over every row (what a selection sees);
* `spearman_seeds`: rank correlation on the seed rows only, whose scores come from the subset run itself; this is
  the ceiling of any extrapolation from that subset run (the predictor cannot be better than its inputs);
* `top_overlap`: share of the full run's top 30 % found in the extrapolated top 30 %;
* `cost`: CPU seconds of the extrapolation (subset training, embedding, prediction) over those of a full scoring
  run made in the same process (CPU time, `time.process_time`, so that other jobs on the machine do not skew the
  ratio; wall-clock seconds are printed too). Torch runs on `--threads` threads (default 1): with several threads
  on a busy machine, OpenMP's spin-waiting inflates CPU time unevenly and the ratio stops meaning anything.

The last line is `task=<t> fraction=<f> best_spearman=<x> dual_knn_spearman=<y> cost=<c>`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchmark  # noqa: E402

from hf_prune import HFPruner  # noqa: E402
from hf_prune.extrapolation import spearman  # noqa: E402


def top_overlap(reference: np.ndarray, predicted: np.ndarray, share: float = 0.3) -> float:
    k = int(round(share * len(reference)))
    return len(np.intersect1d(np.argsort(-reference)[:k], np.argsort(-predicted)[:k])) / k


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="fmnist20k", choices=["fmnist", "fmnist20k", "rotten_tomatoes", "smoke"])
    parser.add_argument("--fraction", type=float, nargs="+", default=[0.2])
    parser.add_argument("--scores", nargs="+", default=["dual", "el2n", "aum"])
    parser.add_argument("--methods", nargs="+", default=["knn", "gnn"])
    parser.add_argument("--gnn-scores", nargs="+", default=["dual"], help="Scores also extrapolated with the GCN.")
    parser.add_argument("--work", default=str(benchmark.REPO / "runs" / "benchmark"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1; see above)")
    args = parser.parse_args()
    benchmark.torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    benchmark.datasets.disable_progress_bars()
    task = benchmark.make_task(args.task)
    trainer, _ = benchmark.scoring_run(task, Path(args.work) / args.task)
    # Time a full scoring run now, under the same machine load as the extrapolations below.
    timing = benchmark.PruneTrainer(model_init=task.model_init, data_collator=task.collator, train_dataset=task.train,
                                    args=benchmark.prune_args(task, str(Path(args.work) / args.task / "timing"), 0))
    timing.remove_callback(benchmark.PrinterCallback)
    start, cpu = time.perf_counter(), time.process_time()
    timing.train()
    full_seconds, full_cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"[{args.task}] full scoring run: {full_cpu:.1f} CPU s ({full_seconds:.1f} s wall) on {len(task.train)} rows")
    best, dual_knn, cost = -1.0, float("nan"), float("nan")
    for fraction in args.fraction:
        for score in args.scores:
            reference = HFPruner(trainer, method=score).compute_score().values
            for method in args.methods:
                if method == "gnn" and score not in args.gnn_scores:
                    continue
                start, cpu = time.perf_counter(), time.process_time()
                pruner = HFPruner(trainer, method=score, extrapolate=method, extrapolate_fraction=fraction)
                output = pruner.compute_score()
                seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
                seeds = pruner.extrapolation.seed_rows(len(reference), pruner.config.seed)
                parts = {k: round(v, 1) for k, v in output.info["extrapolation"].items() if k.endswith("_seconds")}
                row = {
                    "spearman_all": spearman(output.values, reference),
                    "spearman_seeds": spearman(output.values[seeds], reference[seeds]),
                    "top_overlap": top_overlap(reference, output.values),
                    "cost": cpu / full_cpu,
                }
                print(f"  fraction {fraction:g} {score:10s} {method}: spearman_all {row['spearman_all']:+.3f} "
                      f"spearman_seeds {row['spearman_seeds']:+.3f} top30_overlap {row['top_overlap']:.3f} "
                      f"cost {row['cost']:.3f} of the full run ({cpu:.1f} CPU s, {seconds:.1f} s wall: {parts})", flush=True)
                best = max(best, row["spearman_all"])
                if score == "dual" and method == "knn":
                    dual_knn, cost = row["spearman_all"], row["cost"]
    print(f"task={args.task} fraction={args.fraction[-1]:g} best_spearman={best:.3f} dual_knn_spearman={dual_knn:.3f} "
          f"cost={cost:.3f}")


if __name__ == "__main__":
    main()
