"""The validation protocol: retrain on a subset and measure test accuracy, offline (no `evaluate.load` from the Hub),
and the check built on it: a pruned subset against random subsets of the same size ([`compare_with_random`]).

Accuracy is computed directly from the predictions, so nothing is fetched at run time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from transformers import PrinterCallback, Trainer, TrainingArguments, set_seed

from . import logging
from .errors import InvalidArgumentError
from .validation import is_int


if TYPE_CHECKING:  # pragma: no cover
    from .pruner import HFPruner

logger = logging.get_logger(__name__)


def macro_f1(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Unweighted mean over the classes present in `labels` of the per-class F1 (a class never predicted scores 0)."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    scores = []
    for label in np.unique(labels):
        true_positive = float(np.sum((predictions == label) & (labels == label)))
        predicted, actual = float(np.sum(predictions == label)), float(np.sum(labels == label))
        scores.append(2.0 * true_positive / (predicted + actual) if predicted + actual else 0.0)
    return float(np.mean(scores)) if scores else float("nan")


def compute_accuracy(eval_pred: Any) -> dict[str, float]:
    """`compute_metrics` for classification: accuracy and macro-F1 from logits and labels (no Hub download)."""
    logits, labels = eval_pred.predictions, eval_pred.label_ids
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    predictions = np.asarray(logits).argmax(axis=-1)
    return {"accuracy": float((predictions == np.asarray(labels)).mean()),
            "macro_f1": macro_f1(predictions, np.asarray(labels))}


@dataclass
class RetrainOutcome:
    """Accuracy, macro-F1 and wall-clock time of one retraining run."""

    accuracy: float
    train_seconds: float
    num_rows: int
    macro_f1: float | None = None


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
    return RetrainOutcome(accuracy=float(metrics["eval_accuracy"]), train_seconds=seconds, num_rows=len(train_dataset),
                          macro_f1=float(metrics["eval_macro_f1"]) if "eval_macro_f1" in metrics else None)


@dataclass
class RandomComparison:
    """A pruned subset against random subsets of the same size, each retrained under the same recipe and seeds.

    Attributes:
        ratio (`float`): Pruning ratio (fraction of rows removed).
        rows_kept (`int`): Rows in the pruned subset and in every random one.
        method (`str`): What made the pruned subset (`"<score> + <selector>"`).
        seeds (`list[int]`): Training seeds; seed `s` trains both the pruned subset and random draw `s`.
        pruned (`list[float]`): Test accuracy of the pruned subset, one per seed.
        random (`list[float]`): Test accuracy of a new random subset per seed.
        train_seconds (`dict[str, float]`): Total training time of each side.
    """

    ratio: float
    rows_kept: int
    method: str
    seeds: list[int]
    pruned: list[float]
    random: list[float]
    train_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def pruned_mean(self) -> float:
        return float(np.mean(self.pruned))

    @property
    def random_mean(self) -> float:
        return float(np.mean(self.random))

    @property
    def difference(self) -> float:
        """Pruned minus random mean accuracy (positive: the pruned subset trains better)."""
        return self.pruned_mean - self.random_mean

    @property
    def standard_error(self) -> float | None:
        """Standard error of `difference` (unpaired; `None` with fewer than two seeds)."""
        if len(self.seeds) < 2:
            return None
        return float(np.sqrt(np.var(self.pruned, ddof=1) / len(self.pruned) + np.var(self.random, ddof=1) / len(self.random)))

    def summary(self) -> str:
        def cell(values: list[float]) -> str:
            spread = f" ± {np.std(values, ddof=1):.4f}" if len(values) > 1 else ""
            return f"{np.mean(values):.4f}{spread}"

        se = self.standard_error
        verdict = f" (difference / standard error: {self.difference / se:+.1f})" if se else ""
        return (
            f"ratio {self.ratio}: {self.rows_kept} rows; pruned ({self.method}) {cell(self.pruned)} against random "
            f"{cell(self.random)} over {len(self.seeds)} seed(s): {self.difference:+.4f}{verdict}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ratio": self.ratio, "rows_kept": self.rows_kept, "method": self.method, "seeds": list(self.seeds),
            "pruned": list(self.pruned), "random": list(self.random), "pruned_mean": self.pruned_mean,
            "random_mean": self.random_mean, "difference": self.difference, "standard_error": self.standard_error,
            "train_seconds": dict(self.train_seconds),
        }


def compare_with_random(
    pruner: HFPruner,
    ratio: float | None = None,
    *,
    eval_dataset=None,
    model_init: Callable[[], torch.nn.Module] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    args: TrainingArguments | None = None,
    data_collator=None,
) -> RandomComparison:
    """Retrain on `pruner`'s subset and on random subsets of the same size, and compare test accuracy.

    The experiment behind [`HFPruner.compare_with_random`], which documents the arguments. For every seed `s`, one
    model is trained on the pruner's subset at `ratio` and one on a new random subset of the same size
    (`HFPruner(..., method="random", selector="random", seed=s)` on the same record), both from `model_init()` with
    the same recipe, the same number of epochs and training seed `s` ([`retrain_and_evaluate`]), then tested on
    `eval_dataset`. What is not given is taken from `pruner.trainer`; neither the caller's datasets nor the trainer
    are modified.

    Returns:
        [`RandomComparison`]: per-seed accuracies of both sides, their means, difference and standard error. A warning
        is logged when the pruned subset trains worse than random on average.

    Example:

    ```python
    >>> compare_with_random(HFPruner(trainer), 0.5, seeds=[0, 1, 2]).summary()
    ```
    """
    from .pruner import HFPruner

    model_init, eval_dataset, args = _retraining_setup(pruner.trainer, model_init, eval_dataset, args)
    data_collator = data_collator if data_collator is not None else getattr(pruner.trainer, "data_collator", None)
    if is_int(seeds, numpy=True):
        raise InvalidArgumentError(f"`seeds` is a list of training seeds, got the number {seeds!r}: e.g. "
                                   f"`seeds=list(range({int(seeds)}))` for {int(seeds)} seeds.")
    seeds = list(seeds)
    if not seeds or not all(is_int(s, numpy=True) for s in seeds):
        raise InvalidArgumentError(f"`seeds` must be a non-empty list of integers, got {seeds!r}.")
    seeds = [int(s) for s in seeds]
    if len(set(seeds)) < len(seeds):
        # A repeated seed repeats the same two trainings: it would count as evidence it is not.
        raise InvalidArgumentError(f"`seeds` repeats a seed ({seeds}); give distinct seeds, e.g. `seeds=[0, 1, 2]`.")
    if pruner.dataset is None:
        raise InvalidArgumentError(
            "This pruner has no training set to take rows from: pass it, `HFPruner.load(path, dataset=train_ds)`."
        )
    last_ratio = pruner.result.ratio if pruner.result is not None else None
    if ratio is None and last_ratio is None:
        earlier = (" (the last selection was made with `epsilon`, which sets no ratio: pass the ratio it implies, "
                   f"{pruner.result.num_removed / pruner.result.num_samples:.4g}, or another)"
                   if pruner.result is not None else " (no earlier `prune(ratio)` to reuse)")
        raise InvalidArgumentError(
            f"`ratio` is required{earlier}: the fraction of rows to remove, in (0, 1)."
        )
    result = pruner.result if ratio is None or ratio == last_ratio else pruner.select(ratio)
    pruned_rows = pruner.dataset.select(result.kept)
    pruned, random, seconds = [], [], {"pruned": 0.0, "random": 0.0}
    for seed in seeds:
        if pruner.source_result is not None or pruner.extrapolation is not None:
            # A pruner from a saved result has labels, not a record; an extrapolating one has no full record (its
            # `record` would train the whole run). The random draw needs only the labels.
            baseline = HFPruner.from_result(pruner.source_result or result, pruner.dataset, selector="random",
                                            seed=seed, class_quota="proportional", min_per_class=0)
        else:
            baseline = HFPruner(record=pruner.record, dataset=pruner.dataset, method="random", selector="random",
                                seed=seed)
        drawn = baseline.select(result.ratio).kept
        for side, rows, accuracies in (("pruned", pruned_rows, pruned),
                                       ("random", pruner.dataset.select(drawn), random)):
            outcome = retrain_and_evaluate(model_init, rows, eval_dataset, args, seed=seed,
                                           data_collator=data_collator)
            accuracies.append(outcome.accuracy)
            seconds[side] += outcome.train_seconds
    comparison = RandomComparison(
        ratio=float(result.ratio), rows_kept=len(result.kept), method=f"{result.method} + {result.selector}",
        seeds=seeds, pruned=pruned, random=random, train_seconds=seconds,
    )
    logger.info(f"hf_prune: {comparison.summary()}")
    if comparison.difference < 0:
        logger.warning(
            f"hf_prune: the pruned subset trained worse than random subsets of the same size ({comparison.summary()}"
            "). Try another method or ratio, or train on a random subset: where few rows per class are kept of a "
            "short run, a random subset is often as good as any score-based one (the default says how far it trusted "
            "its scores in result.info['selection']['trust'])."
        )
    return comparison


def _retraining_setup(trainer, model_init, eval_dataset, args) -> tuple:
    """`model_init`, `eval_dataset` and `args` of the retraining runs: as given, else the trainer's; a missing one is
    an [`InvalidArgumentError`] saying how to give it."""

    def from_trainer(value, attribute: str, fix: str):
        value = value if value is not None else getattr(trainer, attribute, None)
        if value is None:
            raise InvalidArgumentError(fix)
        return value

    model_init = from_trainer(
        model_init, "model_init",
        "`compare_with_random` trains fresh models and has no way to make one: pass `model_init=`, a function "
        "returning the model as it was before training (e.g. `lambda: AutoModelForSequenceClassification"
        ".from_pretrained(name, num_labels=2)`), or build the trainer with `model_init=`.")
    eval_dataset = from_trainer(
        eval_dataset, "eval_dataset",
        "`compare_with_random` needs held-out rows to test on: pass `eval_dataset=` (rows not in the training "
        "set), or give the trainer an `eval_dataset`.")
    if isinstance(eval_dataset, dict):
        raise InvalidArgumentError(
            f"The `eval_dataset` is a dict ({', '.join(map(str, eval_dataset))}): pass one of them as "
            "`eval_dataset=`."
        )
    args = from_trainer(
        args, "args",
        "This pruner was made from a record, without a trainer: pass the retraining recipe as `args=` "
        "(`TrainingArguments`).")
    names = getattr(eval_dataset, "column_names", None)
    accepted = {"label", "labels", "label_ids", *(getattr(args, "label_names", None) or []),
                *([getattr(args, "label_column", None)] if getattr(args, "label_column", None) else [])}
    if names is not None and not accepted & set(names):
        # Checked before any training: accuracy needs the held-out rows' labels.
        raise InvalidArgumentError(
            f"The `eval_dataset` has no label column (columns: {names}); accuracy on it needs one: pass held-out rows "
            "with a `label` or `labels` column."
        )
    return model_init, eval_dataset, args
