"""From what the caller gives `HFPruner` to what it reads: the trainer and training set ([`resolve_sources`]), a
plain `transformers.Trainer` made into an isolated `PruneTrainer` ([`convert_trainer`]), and the record of a
`PruneTrainer` ([`trainer_record`])."""

from __future__ import annotations

import copy
import os

from transformers import Trainer

from . import logging
from .config import to_prune_arguments
from .errors import InvalidArgumentError, RecordError
from .tracking.dataset import check_train_dataset
from .tracking.record import TrainingRecord
from .trainer import PruneTrainer, PruneTrainerMixin


logger = logging.get_logger(__name__)

#: `TrainingArguments` a converted plain `Trainer` never takes from the user's: it records into a directory of its own
#: and writes, pushes and reports nothing else (the user's checkpoints, Hub repo and experiment trackers stay untouched).
#: `hf-prune compare` retrains under the same isolation.
ISOLATED_ARGUMENTS = {
    "save_strategy": "no",
    "push_to_hub": False,
    "hub_model_id": None,
    "hub_token": None,
    "report_to": [],
    "load_best_model_at_end": False,
    "resume_from_checkpoint": None,
    "eval_strategy": "no",
}

#: Callbacks every `Trainer` adds itself; the converted trainer adds its own, so they are not copied.
_DEFAULT_CALLBACKS = {"DefaultFlowCallback", "ProgressCallback", "PrinterCallback"}


def resolve_sources(trainer: Trainer | None, record: str | TrainingRecord | None, dataset=None) -> tuple:
    """The trainer and training set of `HFPruner(trainer)` or `HFPruner(record=..., dataset=...)`, checked.

    A plain `transformers.Trainer` is converted ([`convert_trainer`]); the training set is `dataset`, else the
    trainer's. Neither a trainer nor a record, a record without `dataset`, or no training set at all is an
    [`InvalidArgumentError`] saying what to pass.

    Returns:
        `tuple`: `(trainer, dataset)`, the trainer a `PruneTrainer` or `None`.
    """
    if trainer is not None and not isinstance(trainer, Trainer):
        raise InvalidArgumentError(
            f"`trainer` must be a transformers.Trainer (ideally a PruneTrainer), got {type(trainer).__name__}. To "
            "prune from a saved record use `HFPruner(record='out/prune_record', dataset=train_ds)`."
        )
    if trainer is None and record is None:
        raise InvalidArgumentError(
            "HFPruner needs a `trainer`, a `record` (with its `dataset`), or a saved result (`HFPruner.load`, "
            "`HFPruner.from_result`)."
        )
    if trainer is not None and not isinstance(trainer, PruneTrainerMixin):
        trainer = convert_trainer(trainer)
    if record is not None:
        if dataset is None:
            raise InvalidArgumentError("`record=` needs the training set it was made from: pass `dataset=`.")
        check_train_dataset(dataset, "dataset")
    dataset = dataset if dataset is not None else getattr(trainer, "source_dataset", None)
    if dataset is None:
        raise InvalidArgumentError("The trainer has no `train_dataset`; there is nothing to prune.")
    return trainer, dataset


def convert_trainer(trainer: Trainer, output_dir: str | None = None) -> PruneTrainer:
    """A `PruneTrainer` that trains like `trainer` (same recipe, data, collator, metrics, callbacks), in isolation.

    The caller's trainer, model and files are never touched: the model is `trainer.model_init()` if the trainer has a
    `model_init`, else a deep copy of `trainer.model`; the run records into `output_dir` (default: a fresh directory
    under the hf_prune cache, see `hf_prune.cache`), never the user's `output_dir`; checkpoint saving, Hub pushes,
    evaluation during training and the user's `report_to` integrations are off (see [`ISOLATED_ARGUMENTS`]). A copy
    of an already trained model records a run that starts from the trained weights (a warning says so): pass
    `model_init` to record a run from scratch.

    Args:
        trainer (`transformers.Trainer`): The plain trainer to copy.
        output_dir (`str`, *optional*): Directory of the converted run and its record.

    Returns:
        `PruneTrainer`: a trainer that has not trained yet.

    Example:

    ```python
    >>> prune_trainer = convert_trainer(trainer)        # trainer: a plain transformers.Trainer
    >>> prune_trainer.train()                           # records the run; `trainer` is untouched
    ```
    """
    from .cache import new_run_dir

    if trainer.model_init is not None:
        model = trainer.call_model_init()
    else:
        model = copy.deepcopy(trainer.model)
        if trainer.state.global_step > 0:
            logger.warning(
                "The plain Trainer given to HFPruner has already trained its model, but without a record. hf_prune "
                "trains a copy of that model again to record it, starting from the trained weights; give the Trainer a "
                "`model_init` to record a run from scratch."
            )
    run_dir = str(output_dir) if output_dir is not None else str(new_run_dir())
    args = to_prune_arguments(trainer.args, **ISOLATED_ARGUMENTS, output_dir=run_dir)
    logger.warning(f"hf_prune: recording a copy of the plain Trainer's run in {run_dir} (your output_dir is not used).")
    # Reporting integrations would log the copy's run into the user's experiment trackers.
    callbacks = [cb for cb in trainer.callback_handler.callbacks if type(cb).__name__ not in _DEFAULT_CALLBACKS
                 and not type(cb).__module__.startswith("transformers.integrations")]
    copy_trainer = PruneTrainer(
        model=model,
        args=args,
        data_collator=trainer.data_collator,
        train_dataset=trainer.train_dataset,
        eval_dataset=trainer.eval_dataset,
        processing_class=trainer.processing_class,
        compute_metrics=trainer.compute_metrics,
        callbacks=callbacks,
    )
    copy_trainer._hf_prune_copy = True  # `trainer_record` then says it trains the copy, not "the trainer"
    return copy_trainer


def trainer_record(trainer: PruneTrainer) -> TrainingRecord:
    """The record of `trainer`'s run; a trainer that has never trained and has no record directory is trained first.

    A trainer that has trained, or whose record directory exists, is never trained again behind the caller's back: a
    missing, unfinished or unreadable record is a [`RecordError`] naming the path and the fix.

    Args:
        trainer (`PruneTrainer`): The trainer whose record to read.

    Returns:
        [`TrainingRecord`]: the record at `trainer.record_dir`.
    """
    path = trainer.record_dir
    if trainer.state.global_step == 0 and not os.path.exists(path):
        what = ("training the copy of the plain Trainer's run" if getattr(trainer, "_hf_prune_copy", False) else
                "the trainer has not trained yet; training it")
        logger.warning(f"hf_prune: {what} now, to record {path}.")
        trainer.train()
        return trainer.record
    try:
        record = TrainingRecord(path)
    except RecordError as err:
        raise RecordError(
            f"{err} HFPruner does not re-train on its own: to record the run again, call `trainer.train()` "
            f"yourself (it replaces the record at {path!r}), or point `PruneArguments(record_dir=...)` at the "
            "record of this run."
        ) from err
    ours = getattr(getattr(trainer, "_prune_session", None), "run_id", None)
    if ours is not None and record.meta.get("run_id") != ours:
        raise RecordError(
            f"The record at {path!r} is not the one this trainer's run wrote: another run has since written its "
            "record there (two trainers with the same `output_dir`). Prune with the trainer of that run, train this "
            "one again, or give each run its own `output_dir` (or `record_dir`)."
        )
    return record
