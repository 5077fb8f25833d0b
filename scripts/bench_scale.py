"""A million-row run: record, score and select with bounded memory.

    python scripts/bench_scale.py                 # 1,000,000 rows, 16 features, 10 classes, 2 epochs
    python scripts/bench_scale.py --rows 100000

Synthetic rows (16 float features, 10 classes) train a tiny MLP with `PruneTrainer` (the record on disk), then the
`dual` score, the `sgd_influence` sweep (64-column sketch) and the bucketed `greedy` selection at ratio 0.5 run
from that record. Peak resident memory is read from the kernel (`ru_maxrss`, the whole process), record size from
the files on disk. The last line is

    rows=<n> peak_rss_gb=<x> record_gb=<y> seconds=<s>
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024**2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--sketch", type=int, default=64)
    cli = parser.parse_args()

    import datasets
    import torch
    from torch import nn
    from transformers import PrinterCallback

    from hf_prune import HFPruner, PruneArguments, PruneTrainer, logging

    logging.set_verbosity_error()
    logging.disable_progress_bars()
    datasets.disable_progress_bars()
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(cli.rows, cli.features)).astype(np.float32)
    labels = (x[:, :10].argmax(1) + (rng.random(cli.rows) < 0.1) * rng.integers(0, 10, cli.rows)) % 10
    features = datasets.Features({"x": datasets.Sequence(datasets.Value("float32"), length=cli.features),
                                  "label": datasets.ClassLabel(num_classes=10)})
    data = datasets.Dataset.from_dict({"x": x, "label": labels}, features=features).with_format("torch")
    del x
    print(f"data: {cli.rows} rows in {time.perf_counter() - start:.1f} s, peak RSS {peak_rss_gb():.2f} GB", flush=True)

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(cli.features, 32), nn.ReLU())
            self.classifier = nn.Linear(32, 10)

        def forward(self, x, labels=None):
            logits = self.classifier(self.body(x))
            return {"logits": logits, "loss": nn.functional.cross_entropy(logits, labels)}

    with tempfile.TemporaryDirectory() as out:
        torch.manual_seed(0)
        args = PruneArguments(output_dir=out, num_train_epochs=cli.epochs, per_device_train_batch_size=cli.batch,
                              learning_rate=0.1, optim="sgd", optim_args="momentum=0.9", report_to=[],
                              save_strategy="no", logging_strategy="no", disable_tqdm=True,
                              dataloader_pin_memory=False, max_grad_norm=0.0)
        trainer = PruneTrainer(model=MLP(), args=args, train_dataset=data)
        trainer.remove_callback(PrinterCallback)
        t0 = time.perf_counter()
        trainer.train()
        record = trainer.record
        record_bytes = sum(f.stat().st_size for f in Path(trainer.record_dir).rglob("*.bin"))
        print(f"train+record: {time.perf_counter() - t0:.1f} s, {record.num_occurrences} sample-steps, record "
              f"{record_bytes / 1e9:.3f} GB on disk, peak RSS {peak_rss_gb():.2f} GB", flush=True)
        t0 = time.perf_counter()
        dual = HFPruner(trainer, method="dual").select(0.5)
        print(f"dual score + topk: {time.perf_counter() - t0:.1f} s, kept {dual.num_kept}, peak RSS "
              f"{peak_rss_gb():.2f} GB", flush=True)
        t0 = time.perf_counter()
        pruner = HFPruner(trainer, method="sgd_influence", sketch_size=cli.sketch, class_quota="none")
        pruner.compute_score()
        sweep = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = pruner.select(0.5)
        select = time.perf_counter() - t0
        influence_bytes = sum(f.stat().st_size for f in (Path(trainer.record_dir) / "influence").rglob("*.bin"))
        print(f"sgd_influence sweep (k={cli.sketch}): {sweep:.1f} s; greedy selection: {select:.1f} s, kept "
              f"{result.num_kept}, norm_vs_random {result.info['selection']['norm_vs_random']:.4f}; vectors "
              f"{influence_bytes / 1e9:.3f} GB on disk; peak RSS {peak_rss_gb():.2f} GB", flush=True)
        t0 = time.perf_counter()
        pruned = result.to_dataset(data)
        print(f"pruned dataset (kept rows + source_index + scores): {len(pruned)} rows in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
    seconds = time.perf_counter() - start
    print(f"rows={cli.rows} peak_rss_gb={peak_rss_gb():.2f} record_gb={record_bytes / 1e9:.3f} seconds={seconds:.0f}")


if __name__ == "__main__":
    main()
