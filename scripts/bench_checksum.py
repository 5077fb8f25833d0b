"""Cost of verifying a record's checksums on read, against the `dual` score it guards.

    python scripts/bench_checksum.py                       # 60,000 rows x 5 epochs, 10 classes, 128-dim float16
    python scripts/bench_checksum.py --record /tmp/rec     # reuse (or build there) the synthetic record

The record has the size of the Fashion-MNIST 60k scoring record: 300,000 occurrence rows (batches of 128, 2,345
steps) with every column the trainer writes (`features` as float16, 128 wide), written directly through
`ColumnWriter` and published by the real `finalize_record` (which computes the checksums). Logits are synthetic
(a per-row difficulty that shrinks over epochs), which does not change any byte count or the work of the score.

Each repetition opens the record and computes `dual` twice, interleaved: with verification (every file `dual` reads
is hashed once) and without (the private switch `hf_prune.tracking.record._VERIFY_CHECKSUMS`). Runs read a warm page
cache: on a cold one the hash reads the columns into the cache and the score then reads them from it, so the extra
I/O is the same one pass over the columns `dual` needs. The last line is

    checksum_seconds=<s> scoring_seconds=<s> overhead=<fraction>

with `checksum_seconds` the median time spent hashing in the verified runs, `scoring_seconds` the median of the
unverified runs and `overhead` their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np


sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from record_utils import synthetic_meta  # noqa: E402  (the tests' synthetic record, at benchmark size)


ROWS, EPOCHS, CLASSES, DIM, BATCH = 60_000, 5, 10, 128, 128


def build_record(path: Path) -> float:
    """Write the synthetic record at `path` and finalize it; returns the seconds `finalize_record` took."""
    from hf_prune.tracking.record import RANK_MANIFEST, occurrence_columns, rank_dir, step_columns
    from hf_prune.tracking.recorder import finalize_record, write_meta
    from hf_prune.tracking.storage import ColumnWriter, atomic_write_json, write_array

    rng = np.random.default_rng(0)
    labels = rng.integers(0, CLASSES, ROWS)
    difficulty = rng.gamma(2.0, 1.0, ROWS)
    meta = synthetic_meta(ROWS, CLASSES, DIM, track_features=True, feature_dtype="float16")
    path.mkdir(parents=True, exist_ok=True)
    write_meta(path, meta)
    write_array(path, "labels", labels.astype("<i8"))
    directory = rank_dir(path, 0)
    directory.mkdir(exist_ok=True)
    occ = {name: ColumnWriter(directory, f"occ_{name}", dtype, shape)
           for name, (dtype, shape) in occurrence_columns(CLASSES, DIM, "float16", True).items()}
    stp = {name: ColumnWriter(directory, f"step_{name}", dtype, shape)
           for name, (dtype, shape) in step_columns(0).items()}
    for writer in (*occ.values(), *stp.values()):
        writer.truncate(0)
    step = 0
    for epoch in range(EPOCHS):
        order = rng.permutation(ROWS)
        y = labels[order]
        logits = rng.normal(size=(ROWS, CLASSES)).astype(np.float32)
        logits[np.arange(ROWS), y] += (epoch + 1) / difficulty[order]
        shifted = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        residual = probs.copy()
        residual[np.arange(ROWS), y] -= 1.0
        steps_of_rows = step + np.arange(ROWS) // BATCH
        batch_size = np.bincount(steps_of_rows - step)[steps_of_rows - step]
        columns = {
            "index": order, "step": steps_of_rows, "epoch": np.full(ROWS, epoch), "microbatch": np.zeros(ROWS),
            "label": y, "loss": -np.log(probs[np.arange(ROWS), y]), "weight": 1.0 / batch_size,
            "logits": logits, "logit_grad": residual / batch_size[:, None],
            "features": rng.normal(size=(ROWS, DIM)),
        }
        for name, writer in occ.items():
            writer.append(columns[name])
            writer.flush()
        count = int(steps_of_rows[-1] - step + 1)
        step_ids = np.arange(step, step + count)
        for name, values in {
            "step": step_ids, "epoch": np.full(count, epoch), "lr": np.full((count, 2), 0.05), "clip": np.ones(count),
            "skipped": np.zeros(count), "rows": np.bincount(steps_of_rows - step), "opt_step": step_ids + 1,
        }.items():
            stp[name].append(values)
            stp[name].flush()
        step += count
    counts = {"occurrences": occ["index"].rows, "steps": stp["step"].rows, "epochs_completed": EPOCHS,
              "epoch": EPOCHS - 1, "mismatched": 0, "captured": occ["index"].rows, "complete": True}
    atomic_write_json(directory / RANK_MANIFEST, counts)
    start = time.perf_counter()
    finalize_record(path, 1, meta)
    return time.perf_counter() - start


def score_once(path: Path, verify: bool) -> tuple[float, float]:
    """Open the record and compute `dual`; returns (total seconds, seconds spent hashing)."""
    import hf_prune
    from hf_prune.scores.base import ScoringContext
    from hf_prune.tracking import record as record_module

    hashing = [0.0]
    real_checksum = record_module.file_checksum

    def timed_checksum(*args, **kwargs):
        start = time.perf_counter()
        try:
            return real_checksum(*args, **kwargs)
        finally:
            hashing[0] += time.perf_counter() - start

    record_module._VERIFY_CHECKSUMS = verify
    record_module.file_checksum = timed_checksum
    try:
        start = time.perf_counter()
        record = record_module.TrainingRecord(path)
        hf_prune.get_score("dual")(record, ScoringContext())
        total = time.perf_counter() - start
    finally:
        record_module._VERIFY_CHECKSUMS = True
        record_module.file_checksum = real_checksum
    return total, hashing[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", default="/tmp/hf_prune_bench_checksum/record", help="Synthetic record (reused).")
    parser.add_argument("--repeats", type=int, default=3)
    cli = parser.parse_args()

    from hf_prune import logging
    from hf_prune.tracking.record import RECORD_META
    from hf_prune.tracking.storage import file_checksum

    logging.set_verbosity_error()
    path = Path(cli.record)
    meta_path = path / RECORD_META
    reuse = meta_path.is_file() and "checksums" in json.loads(meta_path.read_text())
    if reuse:
        print(f"reusing the record at {path}")
    else:
        import shutil

        shutil.rmtree(path, ignore_errors=True)
        seconds = build_record(path)
        print(f"built the record at {path}; finalize_record (merge-free, with checksums) took {seconds:.2f} s")
    meta = json.loads(meta_path.read_text())
    files = meta["checksums"]["files"]
    size = sum((path / relative).stat().st_size for relative in files)
    start = time.perf_counter()
    for relative in files:
        file_checksum(path / relative, meta["checksums"]["algorithm"])
    every_file = time.perf_counter() - start
    print(f"record: {len(files)} files, {size / 1e6:.0f} MB; hashing every file ({meta['checksums']['algorithm']}) "
          f"takes {every_file:.3f} s")

    score_once(path, verify=False)  # warm the page cache and the imports
    verified, hashing, plain = [], [], []
    for _ in range(cli.repeats):
        total, hashed = score_once(path, verify=True)
        verified.append(total)
        hashing.append(hashed)
        plain.append(score_once(path, verify=False)[0])
    checksum_seconds = statistics.median(hashing)
    scoring_seconds = statistics.median(plain)
    print(f"open+dual verified: {[round(t, 3) for t in verified]} s, unverified: {[round(t, 3) for t in plain]} s, "
          f"difference of medians {statistics.median(verified) - scoring_seconds:+.3f} s")
    print(f"checksum_seconds={checksum_seconds:.4f} scoring_seconds={scoring_seconds:.4f} "
          f"overhead={checksum_seconds / scoring_seconds:.4f}")


if __name__ == "__main__":
    main()
