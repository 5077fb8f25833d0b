"""Quality, speed and scale of the vector selectors (greedy, greedy + swaps, python-mip with CBC or HiGHS).

    python scripts/bench_selection.py --record runs/benchmark/fmnist/scoring/prune_record      # (a) real vectors
    python scripts/bench_selection.py --n 1000000 --k 64                                        # (b) synthetic
    python scripts/bench_selection.py --n 10000 100000 1000000 --k 64 --selectors greedy mip   # scaling table

For each input and selector it prints one line with the time, rows per second, peak RSS, the chosen set's
objective (on exact vectors, or on an independent sketch when the vectors are sketched) relative to a random
selection with the same per-bucket class counts (`norm_vs_random`) and to the plain greedy without swaps
(`norm_vs_greedy`), and the number of MIP buckets that hit the time cap. The last line is

    n=<n> seconds=<s> samples_per_s=<x> norm_vs_random=<ratio> norm_vs_greedy=<ratio> buckets_time_limited=<k>

for the last (largest) input and the `mip` selector (its default settings).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from hf_prune import logging
from hf_prune.selection import Budget, SelectionInputs, get_selector


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024**2)


def synthetic(n: int, k: int, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    vectors = np.empty((n, k), dtype=np.float32)
    chunk = 1 << 18
    for lo in range(0, n, chunk):
        block = rng.standard_normal((min(chunk, n - lo), k), dtype=np.float32)
        block += 0.2 * labels[lo : lo + chunk, None].astype(np.float32) / classes
        vectors[lo : lo + chunk] = block
    return labels, vectors, None


def from_record(path: str, sketch: str):
    from hf_prune import TrainingRecord
    from hf_prune.influence.sweep import SweepConfig, cached_sweep

    record = TrainingRecord(path)
    k = None if sketch == "exact" else int(sketch)
    result = cached_sweep(record, SweepConfig(sketch_size=k, eval_sketch_size=0 if k is None else 64))
    return np.asarray(record.labels), np.asarray(result.vectors), result.eval_vectors


def run(name: str, options: dict, labels, vectors, eval_vectors, ratio: float, class_quota: str):
    inputs = SelectionInputs(labels=labels, vectors=vectors, aux={"eval_vectors": eval_vectors}
                             if eval_vectors is not None else {}, seed=0, class_quota=class_quota,
                             allow_empty_classes=True)
    n = len(labels)
    budget = Budget(n_keep=n - int(np.floor(ratio * n + 0.5)))
    start = time.perf_counter()
    out = get_selector(name, **options)(inputs, budget)
    seconds = time.perf_counter() - start
    return out, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", default=None, help="A training record (uses its SGD-Influence vectors).")
    parser.add_argument("--sketch", default="exact", help="'exact' or a sketch size for --record.")
    parser.add_argument("--n", type=int, nargs="+", default=[1_000_000], help="Synthetic sizes (without --record).")
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--objective", default="mean_match", choices=["mean_match", "min_norm"])
    parser.add_argument("--bucket-size", nargs="+", default=["default"],
                        help="Rows per bucket, or 'default' (the selectors' own: 1,000 per class with per-class groups)")
    parser.add_argument("--selectors", nargs="+", default=["greedy-noswap", "greedy", "mip"],
                        help="greedy-noswap, greedy, mip, mip-always, mip-highs, mip-highs-always")
    parser.add_argument("--node-limit", type=int, default=50)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--class-quota", default="proportional", choices=["proportional", "none"])
    cli = parser.parse_args()
    logging.set_verbosity_error()
    logging.disable_progress_bars()
    inputs = [("record", *from_record(cli.record, cli.sketch))] if cli.record else [
        (f"synthetic n={n} k={cli.k}", *synthetic(n, cli.k, cli.classes)) for n in cli.n
    ]
    last = None
    for label, labels, vectors, eval_vectors in inputs:
        n = len(labels)
        for bucket in cli.bucket_size:
            base = {"objective": cli.objective, "bucket_size": None if bucket == "default" else int(bucket)}
            configs = {
                "greedy-noswap": ("greedy", {**base, "swaps": False}),
                "greedy": ("greedy", base),
                "mip": ("mip", {**base, "node_limit": cli.node_limit, "n_jobs": cli.n_jobs, "solve": "constrained"}),
                "mip-always": ("mip", {**base, "node_limit": cli.node_limit, "n_jobs": cli.n_jobs, "solve": "always"}),
                "mip-highs": ("mip", {**base, "node_limit": cli.node_limit, "n_jobs": cli.n_jobs, "solver": "highs"}),
                "mip-highs-always": ("mip", {**base, "node_limit": cli.node_limit, "n_jobs": cli.n_jobs,
                                             "solver": "highs", "solve": "always"}),
            }
            reference = None
            for key in cli.selectors:
                name, options = configs[key]
                out, seconds = run(name, options, labels, vectors, eval_vectors, cli.ratio, cli.class_quota)
                info = out.info
                if key == "greedy-noswap":
                    reference = info["objective_checked"]
                vs_greedy = info["objective_checked"] / reference if reference else float("nan")
                limited = info.get("buckets_time_limited", 0)
                improved = info.get("groups_improved_by_mip", "-")
                print(
                    f"{label} bucket={info['bucket_size']} {key:14s} seconds={seconds:8.2f} samples_per_s={n / seconds:10.0f} "
                    f"objective={info['objective_checked']:.4g} ({info['objective_checked_on']}) "
                    f"norm_vs_random={info['norm_vs_random']:.4f} norm_vs_greedy={vs_greedy:.3f} "
                    f"buckets={info['buckets']} time_limited={limited} improved_by_mip={improved} "
                    f"peak_rss_gb={peak_rss_gb():.2f}",
                    flush=True,
                )
                if key.startswith("mip"):
                    last = (n, seconds, info, vs_greedy)
                elif last is None or last[0] < n:
                    last = (n, seconds, info, vs_greedy)
    n, seconds, info, vs_greedy = last
    print(f"n={n} seconds={seconds:.1f} samples_per_s={n / seconds:.0f} norm_vs_random={info['norm_vs_random']:.4f} "
          f"norm_vs_greedy={vs_greedy:.3f} buckets_time_limited={info.get('buckets_time_limited', 0)}")


if __name__ == "__main__":
    main()
