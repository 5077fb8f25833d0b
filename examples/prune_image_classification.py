"""Prune Fashion-MNIST for an HF image classifier, with the HF image-classification data pipeline.

    python examples/prune_image_classification.py                       # offline: Debian Fashion-MNIST (make data)
    python examples/prune_image_classification.py --dataset zalando-datasets/fashion_mnist   # from the Hub

The images stay PIL images in an `image` column and are converted on the fly with `with_transform`
(`remove_unused_columns=False`, as the HF guide recommends); the model is a small `ResNetForImageClassification`
built from a config (no download). `PruneTrainer` records the run; `HFPruner(trainer).prune(ratio)` returns the
pruned `datasets.Dataset`, which is saved to disk.
"""

from __future__ import annotations

import argparse
import time

import datasets
from transformers import PrinterCallback, ResNetConfig, ResNetForImageClassification
from transformers.utils import logging

from hf_prune import HFPruner, PruneArguments, PruneTrainer
from hf_prune.evaluation import compute_accuracy
from hf_prune.tasks import fashion_mnist_transform, load_fashion_mnist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=None, help="Hub dataset name (default: offline Fashion-MNIST).")
    parser.add_argument("--per-class", type=int, default=500, help="Training rows per class.")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--ratio", type=float, default=0.4, help="Fraction of the rows to remove.")
    parser.add_argument("--method", default=None, help="Score (default: the library default; see hf_prune.list_scores()).")
    parser.add_argument("--output-dir", default="out/image")
    cli = parser.parse_args()
    logging.set_verbosity_error()

    train = load_fashion_mnist("train", per_class=cli.per_class, as_images=True, name=cli.dataset)
    test = load_fashion_mnist("test", per_class=200, as_images=True, name=cli.dataset)
    labels = train.features["label"].names
    model = ResNetForImageClassification(
        ResNetConfig(
            num_channels=1, embedding_size=16, hidden_sizes=[16, 32, 64], depths=[1, 1, 1], layer_type="basic",
            num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)},
        )
    )
    args = PruneArguments(
        output_dir=cli.output_dir,
        num_train_epochs=cli.epochs,
        per_device_train_batch_size=64,
        learning_rate=2e-3,
        remove_unused_columns=False,  # the transform needs the `image` column
        eval_strategy="epoch",
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    trainer = PruneTrainer(
        model=model,
        args=args,
        train_dataset=train.with_transform(fashion_mnist_transform),
        eval_dataset=test.with_transform(fashion_mnist_transform),
        compute_metrics=compute_accuracy,
    )
    trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    print(f"trained {cli.epochs} epochs on {len(train)} images in {time.perf_counter() - start:.1f} s; "
          f"test accuracy {trainer.evaluate()['eval_accuracy']:.4f}")

    pruner = HFPruner(trainer) if cli.method is None else HFPruner(trainer, method=cli.method)
    pruned = pruner.prune(cli.ratio)
    print(pruner.result.summary())
    print("kept per class:", {name: c["kept"] for name, c in pruner.result.counts_per_class().items()})
    path = f"{cli.output_dir}/fmnist-pruned"
    pruned.save_to_disk(path)
    print(f"saved {len(pruned)} rows with columns {pruned.column_names} to {path}")


if __name__ == "__main__":
    datasets.disable_progress_bars()
    main()
