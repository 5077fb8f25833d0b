"""How well the scoring run trained: the facts a user needs before trusting scores read from it.

A run whose model stayed at chance level produced scores that say nothing about the rows (every true-class
probability is about the class frequency), yet every score and selector would still return a confident-looking
subset. [`check_learned`] refuses such a run; [`run_quality`] summarises any run for the result, the log and the
dataset card.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import ScoreNotComputableError


#: A run is at chance level when its last scored epoch's mean training loss is within this fraction of the label
#: entropy (the loss of always predicting the class frequencies): the model explains almost none of the labels.
CHANCE_EXPLAINED = 0.05


@dataclass
class RunQuality:
    """Summary of a scoring run, from its record.

    Attributes:
        epoch (`int`): The last scored epoch (0-based) the training figures come from.
        train_loss (`float`): Mean training loss of that epoch (training forward pass, before each row's update).
        train_accuracy (`float`): Training accuracy of that epoch.
        label_entropy (`float`): Entropy (nats) of the training labels: the loss of predicting class frequencies.
        majority_share (`float`): Share of the most frequent class: the accuracy of always predicting it.
        explained (`float`): `1 − train_loss / label_entropy`: the share of the label entropy the model explains
            (1 for a perfect fit, 0 at chance; `nan` for a single-class training set).
        eval_accuracy (`float`, *optional*): Accuracy on the trainer's `eval_dataset` at the final model, when the
            record holds it (`PruneArguments(track_eval=True)` and an eval set).
        eval_rows (`int`, *optional*): Rows of that eval set.
        recorded_epochs (`int`, *optional*): Epochs the record holds (or the scores read).
        planned_epochs (`float`, *optional*): The scoring run's schedule in epochs: `num_train_epochs`, or with
            `max_steps` set (which overrides it in Transformers) `max_steps` over the optimizer steps of one epoch.
        short_record (`bool`): Whether the scores read fewer whole epochs than the schedule planned
            (`score_epochs`, the score's `epochs` option, or an interrupted run): they describe the start of
            training, not its end. A schedule's trailing part-epoch (`num_train_epochs=2.5`) does not count.
    """

    epoch: int
    train_loss: float
    train_accuracy: float
    label_entropy: float
    majority_share: float
    explained: float
    eval_accuracy: float | None = None
    eval_rows: int | None = None
    recorded_epochs: int | None = None
    planned_epochs: float | None = None
    short_record: bool = False

    @property
    def at_chance(self) -> bool:
        """Whether the model learned (almost) nothing about the labels (see `CHANCE_EXPLAINED`)."""
        return bool(np.isfinite(self.explained) and self.explained < CHANCE_EXPLAINED)

    def to_dict(self) -> dict[str, Any]:
        return {key: (round(value, 6) if isinstance(value, float) and np.isfinite(value) else value)
                for key, value in asdict(self).items()}

    def summary(self) -> str:
        text = (f"scoring run, epoch {self.epoch + 1}: train loss {self.train_loss:.4f} (label entropy "
                f"{self.label_entropy:.4f}), train accuracy {self.train_accuracy:.4f} (majority class "
                f"{self.majority_share:.4f})")
        if self.eval_accuracy is not None:
            text += f", eval accuracy {self.eval_accuracy:.4f} on {self.eval_rows} rows"
        if self.short_record:
            text += f"; a short record: {self.recorded_epochs} of the {self.planned_epochs:g} planned epochs"
        return text


def planned_epochs(record) -> float | None:
    """The scoring run's schedule in epochs (`None` when the record does not say): `num_train_epochs`, unless
    `max_steps` was set, which Transformers follows instead: then `max_steps` over the optimizer steps of the first
    recorded epoch (all processes together)."""
    training = record.meta.get("training") or {}
    planned = training.get("num_train_epochs")
    max_steps = int(training.get("max_steps") or 0)
    if max_steps > 0:
        epochs = np.asarray(record.steps["epoch"])
        per_epoch = int((epochs == epochs[0]).sum()) if len(epochs) else 0
        planned = max_steps / per_epoch if per_epoch else None
    return None if planned is None else float(planned)


def run_quality(record, epochs: int | None = None) -> RunQuality:
    """The [`RunQuality`] of a record, read at its last scored epoch (or epoch `epochs` with `epochs` given)."""
    present = record.epochs if epochs is None else record.epochs[:epochs]
    epoch = int(present[-1])
    rows, _ = record.first_rows(epoch)
    loss = float(np.mean(np.asarray(record.occurrences["loss"][np.sort(rows)], dtype=np.float64))) if len(rows) else \
        float("nan")
    accuracy = float(record.occurrence_quantity("correct", np.sort(rows)).mean()) if len(rows) else float("nan")
    counts = np.bincount(np.asarray(record.labels, dtype=np.int64))
    shares = counts[counts > 0] / counts.sum()
    entropy = float(-(shares * np.log(shares)).sum())
    explained = 1.0 - loss / entropy if entropy > 1e-12 else float("nan")
    planned = planned_epochs(record)
    quality = RunQuality(epoch=epoch, train_loss=loss, train_accuracy=accuracy, label_entropy=entropy,
                         majority_share=float(shares.max()), explained=float(explained),
                         recorded_epochs=len(present), planned_epochs=planned,
                         short_record=bool(planned is not None and len(present) < math.floor(planned + 1e-9)))
    query = record.auxiliary("query")
    if query is not None and "logits" in query and "labels" in query and len(query["labels"]):
        logits = np.asarray(query["logits"])
        labels = np.asarray(query["labels"])
        quality.eval_accuracy = float((logits.argmax(axis=1) == labels).mean())
        quality.eval_rows = int(len(labels))
    return quality


def check_learned(quality: RunQuality, method: str) -> None:
    """Raise [`ScoreNotComputableError`] if the scoring run stayed at chance level (its scores carry no signal)."""
    if not quality.at_chance:
        return
    raise ScoreNotComputableError(
        f"The scoring run stayed near chance level (its predicted probabilities stayed close to the class "
        f"frequencies), so `{method}` scores would say nothing about the rows: in its last scored epoch the mean "
        f"training loss was {quality.train_loss:.4f}, against {quality.label_entropy:.4f} for "
        f"predicting the class frequencies (the model explains {max(quality.explained, 0.0):.1%} of the labels; "
        f"training accuracy {quality.train_accuracy:.4f}, majority class {quality.majority_share:.4f}). Fix the "
        "training recipe and train again: a model trained from scratch needs a larger `learning_rate` than the "
        "TrainingArguments default 5e-5 (which suits fine-tuning pretrained transformers; try 1e-3 with AdamW or "
        "0.05 with SGD) and/or more `num_train_epochs`. To draw a subset without scores, use "
        "`method='random', selector='random'`."
    )
