"""`PruneTrainer`: the stock `transformers.Trainer` loop, plus a training record keyed by source index.

Nothing about training changes: same forward, same backward, same optimizer. Hooks on the classification head read
what the loop already computes (head input, logits, and the gradient of the optimised loss w.r.t. the logits), and a
callback closes each optimizer step with its learning rate, clipping coefficient and (for Adam) the head's second
moment. See [`TrainingRecord`](hf_prune.tracking.record.TrainingRecord) for the layout.
"""

from __future__ import annotations

import inspect
import os
import time
from typing import Any

import numpy as np
from transformers import Trainer, TrainerCallback

from .config import PruneArguments, to_prune_arguments
from .errors import RecordError, UnsupportedModelError
from .logging import get_logger
from .tracking.checks import batch_labels, check_classifier, check_problem_type, model_num_labels
from .tracking.indexing import INDEX_COLUMN, IndexCollator, add_index_column
from .tracking.optimizer import describe_optimizer
from .tracking.record import TrainingRecord
from .tracking.resume import last_complete_checkpoint, resolve_checkpoint
from .tracking.session import RecordingSession


# `check_classifier`, `check_problem_type`, `describe_optimizer` and `last_complete_checkpoint` live in
# `hf_prune.tracking` and stay importable from here, where they were first defined.
__all__ = [
    "PruneTrainer",
    "PruneTrainerMixin",
    "check_classifier",
    "check_problem_type",
    "describe_optimizer",
    "last_complete_checkpoint",
    "make_prune_trainer",
]

logger = get_logger(__name__)


def warn_pruned_columns(dataset: Any) -> None:
    """Warn, before training, that `HFPruner(trainer).prune()` will refuse a training set that already holds the
    columns a pruned dataset adds (`source_index`, `score_<name>`: the output of an earlier prune), so it can be
    renamed now rather than after the run (`select()` is not affected)."""
    from .result import SCORE_PREFIX, SOURCE_INDEX

    names = getattr(dataset, "column_names", None) or []
    clashing = [name for name in names if name == SOURCE_INDEX or name.startswith(SCORE_PREFIX)]
    if clashing:
        logger.warning(
            f"hf_prune: `train_dataset` has column(s) {clashing} (the output of an earlier prune?). "
            "`HFPruner(trainer).prune()` will refuse to overwrite them with this run's: to prune this set again, rename "
            f"them before training, e.g. `train_dataset.rename_column({clashing[0]!r}, 'parent_{clashing[0]}')` "
            "(`HFPruner(trainer).select()` works either way)."
        )


class _RecordCallback(TrainerCallback):
    """Hands the Trainer's epoch and optimizer-step events to the trainer's [`RecordingSession`]."""

    def __init__(self, trainer: PruneTrainerMixin):
        self.trainer = trainer

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.trainer.prune_session.begin_epoch(state.epoch)

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.trainer.prune_session.check_head_gradient()

    def on_optimizer_step(self, args, state, control, **kwargs):
        trainer = self.trainer
        skipped = bool(getattr(trainer.accelerator, "optimizer_step_was_skipped", False))
        trainer.prune_session.end_step(state.global_step, trainer.optimizer, skipped)

    def on_epoch_end(self, args, state, control, **kwargs):
        session = self.trainer.prune_session
        session.end_epoch()
        score_epochs = getattr(args, "score_epochs", None)
        if score_epochs is not None and session.epoch + 1 >= score_epochs:
            control.should_training_stop = True
        return control


class PruneTrainerMixin:
    """Adds hf_prune's training record to any `transformers.Trainer` subclass (see [`make_prune_trainer`]).

    The mixin takes exactly the arguments of the Trainer class it is mixed into. It overrides five hooks, each for one
    reason: `_set_signature_columns_if_needed` (keep the index column), `training_step` (pop the index, arm the head
    probe around forward+backward), `compute_loss` (check once that the probed head produces the model's logits),
    `_clip_grad_norm` (remember the pre-clip norm, which scales the step) and `_save_checkpoint` (commit the record
    with each checkpoint). `train` wraps the parent's to open, resume and finalize the record. What the record keeps
    between hooks lives in one [`RecordingSession`] (`prune_session`).
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # The mixin's hooks must come before the Trainer's in the method order: listed after a Trainer class, none of
        # them runs and the class trains without recording anything.
        mro = cls.__mro__
        before = [klass for klass in mro[:mro.index(PruneTrainerMixin)]
                  if issubclass(klass, Trainer) and not issubclass(klass, PruneTrainerMixin)]
        if before:
            raise TypeError(
                f"`{cls.__name__}` lists a Trainer class before `PruneTrainerMixin`, so the mixin's hooks never run "
                "and nothing would be recorded. List the mixin first (`class "
                f"{cls.__name__}(PruneTrainerMixin, YourTrainer)`), or use `make_prune_trainer(YourTrainer)`."
            )

    def __init__(self, *args, **kwargs):
        # Bind positional arguments by the parent's own signature, so the mixin works for any Trainer class.
        params = dict(zip(inspect.signature(super().__init__).parameters, args))
        params.update(kwargs)
        params["args"] = to_prune_arguments(params.get("args"))
        prune_args: PruneArguments = params["args"]
        train_dataset = params.get("train_dataset")
        self._prune_session = RecordingSession(prune_args, train_dataset)
        if train_dataset is not None:
            warn_pruned_columns(train_dataset)
            params["train_dataset"] = add_index_column(train_dataset)
        model = params.get("model")
        if model is not None and params.get("model_init") is None:
            check_classifier(model_num_labels(model))
        super().__init__(**params)
        self.data_collator = IndexCollator(self.data_collator)
        self.add_callback(_RecordCallback(self))

    # ------------------------------------------------------------------ public
    @property
    def prune_session(self) -> RecordingSession:
        """What this trainer's record keeps between hooks: training labels, head and probe, recorder, metadata."""
        return self._prune_session

    @property
    def source_dataset(self) -> Any:
        """The training set as it was passed (without hf_prune's index column); `None` if none was."""
        return self._prune_session.dataset

    @property
    def record_dir(self) -> str:
        """Where this trainer writes its training record."""
        return self._prune_session.record_dir

    @property
    def record(self) -> TrainingRecord:
        """The finished training record (raises [`RecordError`] if training has not completed)."""
        return TrainingRecord(self.record_dir)

    @property
    def prune_labels(self) -> np.ndarray | None:
        """Label of every training row (int64, in source-index order), read once from `train_dataset`; `None` if the
        trainer was made without one."""
        return self._prune_session.labels

    @property
    def tracked_eval_dataset(self) -> Any:
        """The eval set the record's final pass reads (`track_eval`): the trainer's `eval_dataset`, the first of a
        dict of them; `None` without one or with `track_eval=False`."""
        eval_dataset = self.eval_dataset if self.args.track_eval else None
        if isinstance(eval_dataset, dict):
            eval_dataset = next(iter(eval_dataset.values()))
        return eval_dataset

    def has_record(self) -> bool:
        """Whether a complete record of this trainer's training set exists on disk."""
        try:
            record = self.record
        except RecordError:
            return False
        if self.source_dataset is None:
            return True
        try:
            record.check_dataset(self.source_dataset, self._prune_session.label_column)
        except RecordError:
            return False
        return True

    def train(self, resume_from_checkpoint: str | bool | None = None, trial=None, ignore_keys_for_eval=None, **kwargs):
        """Run `Trainer.train` while writing the training record (same arguments and return value).

        Resuming (`resume_from_checkpoint`) cuts the record back to the checkpoint, so a run killed at any point and
        resumed records the same rows as an uninterrupted one.
        """
        if self.source_dataset is None:
            raise RecordError("PruneTrainer needs a `train_dataset` to record; none was given.")
        if self.args.n_gpu > 1:
            raise UnsupportedModelError(
                "hf_prune does not record under torch.nn.DataParallel (several GPUs in one process); launch one process "
                "per device with `accelerate launch` or `torchrun` instead."
            )
        left_out = len(self.source_dataset) % (self.args.per_device_train_batch_size * max(1, self.args.world_size))
        if self.args.dataloader_drop_last and left_out:
            logger.warning(
                f"hf_prune: `dataloader_drop_last=True` leaves {left_out} rows out of every epoch (other rows each "
                "epoch), so they have no value in the epochs they missed: scores that need every row of the epochs "
                "they read (the default `dual` and `entropy` among them) will refuse this record. For the "
                "scoring run set `dataloader_drop_last=False` (training on the pruned subset may drop them again)."
            )
        checkpoint = resolve_checkpoint(resume_from_checkpoint, self.args.output_dir, self.args.process_index)
        session = self._prune_session
        with session.open_run(checkpoint, self.accelerator, self.is_world_process_zero()):
            start = time.perf_counter()
            output = super().train(
                resume_from_checkpoint=checkpoint, trial=trial, ignore_keys_for_eval=ignore_keys_for_eval, **kwargs
            )
            session.timing["train_seconds"] = time.perf_counter() - start
            eval_dataset = self.tracked_eval_dataset
            capture_query = None if eval_dataset is None else (lambda: self.capture_head(eval_dataset))
            session.finalize(self.accelerator, self.is_world_process_zero(), capture_query)
        return output

    def capture_head(self, dataset, with_index: bool = False) -> dict[str, np.ndarray]:
        """One forward pass over `dataset` at the current model, returning the head's features, logits and labels.

        Runs in eval mode, sharded over processes and gathered (padding duplicates dropped) like `evaluate`.

        Args:
            dataset (`datasets.Dataset`): Evaluation-style dataset (same columns/transform as used for evaluation).
            with_index (`bool`): Also return the source index (the dataset must carry the index column).

        Returns:
            `dict` with `features` `(m, d)`, `logits` `(m, C)`, `labels` `(m,)` (and `index`).
        """
        session = self._prune_session
        session.ensure_probe(self.accelerator.unwrap_model(self.model))
        batches = self.get_eval_dataloader(dataset)
        return session.capture(
            self.model, batches, self._prepare_inputs, self.accelerator.gather_for_metrics, with_index, self.label_names
        )

    # ------------------------------------------------------------------ Trainer hooks
    def _set_signature_columns_if_needed(self):
        # Keep the source-index column when `remove_unused_columns=True` drops what `forward` does not accept.
        super()._set_signature_columns_if_needed()
        if INDEX_COLUMN not in self._signature_columns:
            self._signature_columns.append(INDEX_COLUMN)

    def training_step(self, model, inputs, num_items_in_batch=None, *args, **kwargs):
        # Pop the index before `model(**inputs)`, and capture head input/output/gradient around forward+backward.
        index = inputs.pop(INDEX_COLUMN, None)
        if index is None:
            return super().training_step(model, inputs, num_items_in_batch, *args, **kwargs)
        session = self._prune_session
        target = self.accelerator.unwrap_model(model) if hasattr(self, "accelerator") else model
        session.start(target, self.optimizer, self.is_world_process_zero())
        labels = batch_labels(inputs, self.label_names, session.label_column)
        with session.capturing():
            loss = super().training_step(model, inputs, num_items_in_batch, *args, **kwargs)
        session.record_microbatch(index, labels, getattr(self.accelerator, "scaler", None))
        return loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None, **kwargs):
        # Check once, on the first recorded micro-batch, that the probed head produced the model's logits.
        if not self._prune_session.needs_head_check:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch, **kwargs)
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch, **kwargs)
        self._prune_session.verify_head_once(outputs)
        return (loss, outputs) if return_outputs else loss

    def _clip_grad_norm(self, model):
        # The clipping coefficient scales the head's update; the recursion needs it per step.
        norm = super()._clip_grad_norm(model)
        self._prune_session.note_grad_norm(norm)
        return norm

    def _save_checkpoint(self, model, trial):
        # Commit the record and write its row counts into the checkpoint before the Trainer's own files.
        if self._prune_session.recording:
            folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
            self._prune_session.write_checkpoint_manifest(folder)
        return super()._save_checkpoint(model, trial)


class PruneTrainer(PruneTrainerMixin, Trainer):
    """`transformers.Trainer` that writes a training record for dataset pruning.

    Takes the same arguments as `Trainer`; `args` may be [`PruneArguments`] (a plain `TrainingArguments` is converted,
    keeping every value). The training set must be a `datasets.Dataset` with an integer label column; it is not
    modified (the source-index column is added to a copy).

    Example:

    ```python
    >>> from hf_prune import HFPruner, PruneArguments, PruneTrainer
    >>> trainer = PruneTrainer(model=model, args=PruneArguments(output_dir="out", num_train_epochs=3),
    ...                        train_dataset=train_ds, eval_dataset=eval_ds)
    >>> trainer.train()
    >>> pruned = HFPruner(trainer).prune(0.4)   # removes 40 % of train_ds
    ```
    """


def make_prune_trainer(trainer_cls: type[Trainer]) -> type[Trainer]:
    """Build a recording subclass of any `Trainer` class (e.g. TRL's `SFTTrainer`, `Seq2SeqTrainer`).

    Example:

    ```python
    >>> from transformers import Seq2SeqTrainer
    >>> PruneSeq2SeqTrainer = make_prune_trainer(Seq2SeqTrainer)
    ```
    """
    if not (isinstance(trainer_cls, type) and issubclass(trainer_cls, Trainer)):
        raise TypeError(f"`trainer_cls` must be a subclass of transformers.Trainer, got {trainer_cls!r}.")
    if issubclass(trainer_cls, PruneTrainerMixin):
        return trainer_cls
    return type(f"Prune{trainer_cls.__name__}", (PruneTrainerMixin, trainer_cls), {"__doc__": PruneTrainer.__doc__})
