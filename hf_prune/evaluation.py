"""The validation protocol: retrain on a subset and measure test accuracy, offline (no `evaluate.load` from the Hub).

Accuracy is computed directly from the predictions, so nothing is fetched at run time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import PrinterCallback, Trainer, TrainingArguments, set_seed


def compute_accuracy(eval_pred: Any) -> dict[str, float]:
    """`compute_metrics` for classification: `{"accuracy": ...}` from logits and labels (no Hub download)."""
    logits, labels = eval_pred.predictions, eval_pred.label_ids
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    return {"accuracy": float((np.asarray(logits).argmax(axis=-1) == np.asarray(labels)).mean())}


@dataclass
class RetrainOutcome:
    """Accuracy and wall-clock time of one retraining run."""

    accuracy: float
    train_seconds: float
    num_rows: int


def retrain_and_evaluate(
    model_init: Callable[[], torch.nn.Module],
    train_dataset,
    eval_dataset,
    args: TrainingArguments,
    seed: int = 0,
    data_collator=None,
    processing_class=None,
) -> RetrainOutcome:
    """Train a fresh model from `model_init()` on `train_dataset` with a plain `Trainer`, then test on `eval_dataset`.

    The seed fixes the model's initialisation and the data order (`args.seed` and `args.data_seed` are overridden),
    so two subsets compared with the same seed differ only by their rows.
    """
    set_seed(seed)
    model = model_init()
    run_args = TrainingArguments(
        **{
            **{k: v for k, v in args.to_dict().items() if k in TrainingArguments.__dataclass_fields__},
            "seed": seed,
            "data_seed": seed,
            "report_to": [],
            "save_strategy": "no",
            "eval_strategy": "no",
            "push_to_hub": False,
        }
    )
    extra_columns = [c for c in ("source_index",) if c in train_dataset.column_names]
    extra_columns += [c for c in train_dataset.column_names if c.startswith("score_")]
    if extra_columns:
        train_dataset = train_dataset.remove_columns(extra_columns)
    trainer = Trainer(
        model=model,
        args=run_args,
        train_dataset=train_dataset,
        data_collator=data_collator,
        processing_class=processing_class,
        compute_metrics=compute_accuracy,
    )
    trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    metrics = trainer.evaluate(eval_dataset)
    return RetrainOutcome(accuracy=float(metrics["eval_accuracy"]), train_seconds=seconds, num_rows=len(train_dataset))
