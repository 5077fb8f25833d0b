"""The README's main job: prune Fashion-MNIST offline and check the pruned set against a random subset.

    make demo                       # sets everything up, then runs this script
    python scripts/demo.py --ratio 0.5 --per-class 1000 --epochs 3

Steps: (1) train the small CNN on a class-balanced Fashion-MNIST subset with `PruneTrainer` (the record is written
during that ordinary run), (2) `HFPruner(trainer).prune(ratio)` with the library's default method, (3) retrain a
fresh CNN on the pruned set and on a random subset of the same size (same seed, same recipe), (4) print rows kept,
times and test accuracies. The pruned dataset is saved with `save_to_disk`.
"""

from __future__ import annotations

import argparse
import os
import time

import datasets
import torch
from transformers import PrinterCallback
from transformers.utils import logging

from hf_prune import HFPruner, PruneArguments, PruneTrainer
from hf_prune.evaluation import retrain_and_evaluate
from hf_prune.tasks import load_fashion_mnist, small_cnn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratio", type=float, default=0.5, help="Fraction of the training rows to remove.")
    parser.add_argument("--per-class", type=int, default=1000, help="Training rows per class (10 classes).")
    parser.add_argument("--epochs", type=int, default=3, help="Epochs of the scoring run and of each retrain.")
    parser.add_argument("--method", default=None, help="Score to prune with (default: the library default).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="out/demo")
    cli = parser.parse_args()
    logging.set_verbosity_error()
    datasets.disable_progress_bars()
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    start = time.perf_counter()
    train = load_fashion_mnist("train", per_class=cli.per_class, seed=cli.seed)
    test = load_fashion_mnist("test")
    print(f"data: Fashion-MNIST, {len(train)} training rows (balanced), {len(test)} test rows")

    args = PruneArguments(
        output_dir=cli.output_dir,
        num_train_epochs=cli.epochs,
        per_device_train_batch_size=128,
        learning_rate=0.05,
        optim="sgd",
        optim_args="momentum=0.9",
        weight_decay=5e-4,
        lr_scheduler_type="cosine",
        max_grad_norm=0.0,
        seed=cli.seed,
        data_seed=cli.seed,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    torch.manual_seed(cli.seed)
    trainer = PruneTrainer(model=small_cnn(), args=args, train_dataset=train)
    trainer.remove_callback(PrinterCallback)
    t0 = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - t0
    print(f"scoring run: {cli.epochs} epochs with PruneTrainer in {train_seconds:.1f} s (record: {trainer.record_dir})")

    pruner = HFPruner(trainer) if cli.method is None else HFPruner(trainer, method=cli.method)
    t0 = time.perf_counter()
    pruned = pruner.prune(cli.ratio)
    prune_seconds = time.perf_counter() - t0
    result = pruner.result
    print(
        f"pruned: method={result.method} selector={result.selector}, kept {result.num_kept} of {result.num_samples} "
        f"rows (ratio {cli.ratio}) in {prune_seconds:.2f} s"
    )
    selection = result.info.get("selection") or {}
    if "memorization_gap" in selection:
        print(f"memorisation gap of the run: {selection['memorization_gap']:.3f} -> hard cutoff "
              f"{'applied' if selection.get('cutoff_applied') else 'not applied'} (threshold 0.15)")
    path = os.path.join(cli.output_dir, f"fmnist-pruned-{round(cli.ratio * 100)}")
    pruned.save_to_disk(path)
    print(f"saved: {path} (columns {pruned.column_names})")

    random_subset = HFPruner(trainer, method="random", selector="random", seed=cli.seed).prune(cli.ratio)
    recipe = PruneArguments(**{**args.to_dict(), "output_dir": os.path.join(cli.output_dir, "retrain")})
    ours = retrain_and_evaluate(small_cnn, pruned.with_format("torch"), test.with_format("torch"), recipe, seed=cli.seed + 1)
    rand = retrain_and_evaluate(
        small_cnn, random_subset.with_format("torch"), test.with_format("torch"), recipe, seed=cli.seed + 1
    )
    print(
        f"retrain on {result.num_kept} rows, {cli.epochs} epochs, same seed: test accuracy {ours.accuracy:.4f} "
        f"({result.method}) vs {rand.accuracy:.4f} (random subset of the same size)"
    )
    print(f"total time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
