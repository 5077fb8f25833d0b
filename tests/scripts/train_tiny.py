"""Train the tiny linear classifier with PruneTrainer; launched by tests with 1 or 2 processes (gloo on CPU).

    torchrun --nproc_per_node 2 tests/scripts/train_tiny.py --output_dir OUT --batch 8 --rows 64
"""

import argparse
import os

import datasets
import numpy as np
import torch
from torch import nn

from hf_prune import PruneArguments, PruneTrainer


class Linear(nn.Module):
    def __init__(self, d, c):
        super().__init__()
        self.classifier = nn.Linear(d, c)

    def forward(self, x, labels=None):
        logits = self.classifier(x)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--optim", default="sgd")
    cli = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(cli.rows, 5)).astype("float32")
    y = rng.integers(0, 3, cli.rows)
    ds = datasets.Dataset.from_dict({"x": x.tolist(), "label": y.tolist()})
    torch.manual_seed(0)
    args = PruneArguments(
        output_dir=cli.output_dir,
        num_train_epochs=cli.epochs,
        per_device_train_batch_size=cli.batch,
        learning_rate=0.1,
        optim=cli.optim,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
        ddp_backend="gloo" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        seed=0,
        data_seed=0,
        max_grad_norm=0.0,
    )
    PruneTrainer(model=Linear(5, 3), args=args, train_dataset=ds).train()


if __name__ == "__main__":
    main()
