"""Configuration dataclasses.

[`PruneArguments`] extends `transformers.TrainingArguments` with what is *recorded* during training; everything
decided after training (method, selector, budget) lives in [`SelectionConfig`](hf_prune.selection.SelectionConfig).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from transformers import TrainingArguments

from .errors import InvalidArgumentError


_FEATURE_DTYPES = ("float32", "float16")
_HEAD_STATE_CHOICES = ("auto", "never")


@dataclass
class PruneArguments(TrainingArguments):
    r"""
    `TrainingArguments` plus the settings of hf_prune's training record.

    Every `TrainingArguments` field keeps its meaning and default. The record (per optimizer step and per sample:
    loss, logits, logit gradient, label, head input, learning rate, which samples formed the step) is written to
    `record_dir` while the ordinary HF loop runs; scores and selectors read it afterwards.

    > Parameters that control the record

    Args:
        record_dir (`str`, *optional*):
            Directory of the training record. Defaults to `<output_dir>/prune_record`.
        head_module (`str`, *optional*):
            Dotted name of the classification head (the `nn.Linear` whose output are the logits), e.g.
            `"classifier.out_proj"`. Found automatically for BERT/RoBERTa/ViT/ResNet/ConvNeXt-style classifiers and
            for a plain `nn.Module` whose last `nn.Linear` produces the logits.
        label_column (`str`, *optional*):
            Name of the label column of the training set. Defaults to the first of `label`, `labels` and
            `label_names` found in the dataset.
        track_features (`bool`, *optional*, defaults to `True`):
            Record the head input (penultimate features) of every sample at every step. Needed by `sgd_influence`,
            `influence_function`, `grand` and `moderate`; costs `4·d` bytes per sample and epoch.
        feature_dtype (`str`, *optional*, defaults to `"float32"`):
            Storage dtype of the recorded features, `"float32"` or `"float16"` (halves the record size).
        track_head_state (`str`, *optional*, defaults to `"auto"`):
            `"auto"`: with Adam/AdamW, record the head's first and second moments after every step (`2·P` floats per
            step for a head of `P` parameters), which the SGD-Influence recursion for Adam needs; `"never"`: don't.
        track_eval (`bool`, *optional*, defaults to `True`):
            After training, run the head probe over `eval_dataset` once (forward only) and store its features and
            logits; the SGD-Influence data-cleansing score uses their gradient as the query vector.
        score_epochs (`int`, *optional*):
            Stop training after this many epochs while keeping the learning-rate schedule of `num_train_epochs`
            (DUAL needs only the first epochs of a run: a short scoring run costs `score_epochs / num_train_epochs`).
        record_flush_rows (`int`, *optional*, defaults to `65536`):
            Number of per-sample rows kept in memory before they are appended to the on-disk record.
    """

    record_dir: str | None = field(
        default=None, metadata={"help": "Directory of the training record. Defaults to `<output_dir>/prune_record`."}
    )
    head_module: str | None = field(
        default=None,
        metadata={"help": "Dotted module name of the classification head (the nn.Linear producing the logits)."},
    )
    label_column: str | None = field(
        default=None, metadata={"help": "Label column of the training set (default: `label`, then `labels`)."}
    )
    track_features: bool = field(
        default=True, metadata={"help": "Record the head input (penultimate features) of every sample and step."}
    )
    feature_dtype: str = field(
        default="float32", metadata={"help": "Storage dtype of recorded features: `float32` or `float16`."}
    )
    track_head_state: str = field(
        default="auto",
        metadata={"help": "Record the head's Adam moments per step: `auto` (Adam-type optimizers) or `never`."},
    )
    track_eval: bool = field(
        default=True,
        metadata={"help": "After training, store the eval set's head features and logits (query set for influence)."},
    )
    score_epochs: int | None = field(
        default=None,
        metadata={"help": "Stop after this many epochs but keep the LR schedule of `num_train_epochs` (DUAL)."},
    )
    record_flush_rows: int = field(
        default=65536, metadata={"help": "Per-sample rows buffered in memory before being appended to disk."}
    )

    def __post_init__(self):
        if self.feature_dtype not in _FEATURE_DTYPES:
            raise InvalidArgumentError(
                f"`feature_dtype` must be one of {_FEATURE_DTYPES}, got {self.feature_dtype!r}."
            )
        if self.track_head_state not in _HEAD_STATE_CHOICES:
            raise InvalidArgumentError(
                f"`track_head_state` must be one of {_HEAD_STATE_CHOICES}, got {self.track_head_state!r}."
            )
        if self.score_epochs is not None and (not isinstance(self.score_epochs, int) or self.score_epochs < 1):
            raise InvalidArgumentError(
                f"`score_epochs` must be a positive integer (number of epochs to record), got {self.score_epochs!r}."
            )
        if not isinstance(self.record_flush_rows, int) or self.record_flush_rows < 1:
            raise InvalidArgumentError(
                f"`record_flush_rows` must be a positive integer, got {self.record_flush_rows!r}."
            )
        super().__post_init__()


def to_prune_arguments(args: TrainingArguments | None, **overrides: Any) -> PruneArguments:
    """`args` as [`PruneArguments`] (every value kept), with `overrides` replacing some of them."""
    if args is None:
        return PruneArguments(**{"output_dir": "trainer_output", **overrides})
    if isinstance(args, PruneArguments) and not overrides:
        return args
    cls = type(args) if isinstance(args, PruneArguments) else TrainingArguments
    values = {f.name: getattr(args, f.name) for f in fields(cls) if f.init and hasattr(args, f.name)}
    return PruneArguments(**{**values, **overrides})
