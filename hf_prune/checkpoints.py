"""Scoring from checkpoints the user already has: a training record made of forward passes only.

[`record_checkpoints`] runs every checkpoint (a model object, a saved model directory, or a `Trainer` output
directory holding `checkpoint-<step>` folders) in eval mode over the training set, through the same head probe and
forward pass as `PruneTrainer.capture_head`, and writes a record in `PruneTrainer`'s format with **one epoch per
checkpoint**: every row presented once per checkpoint, with its logits, the cross-entropy logit gradient
`softmax(z) − e_y` and the head input. Scores that read per-epoch values (`el2n`, `dual`, `forgetting`, `aum`,
`entropy`, `grand`, `tracin_cp`, ...) and the selectors then work on it unchanged.

What such a record does *not* hold is the optimizer's trajectory (which rows formed each step, learning rates,
optimizer state): its metadata says `"source": "checkpoints"`, and scores that trace the trajectory
(`sgd_influence`, `sgd_influence_eval`) refuse it. Each "epoch" is an eval-mode pass of a fixed
model, not a training forward pass before an update: values are predictions of a model that has trained on the row.

Checkpoint weights `η_k` (TracIn-CP's learning rate at checkpoint `k`, Pruthi et al. 2020, arXiv 2002.08853) are
stored as the learning rate of the record's steps in checkpoint `k`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import DatasetError, InvalidArgumentError, RecordError, UnsupportedModelError
from .logging import get_logger
from .tracking.checks import check_classifier, check_problem_type
from .tracking.dataset import (
    check_train_dataset,
    class_names,
    dataset_signature,
    read_labels,
    resolve_label_column,
)
from .tracking.dataset import num_classes as dataset_num_classes  # `num_classes` names a local value here
from .tracking.head import HeadInfo, HeadProbe, find_head
from .tracking.indexing import add_index_column
from .tracking.record import RECORD_FORMAT_VERSION, RECORD_META, TrainingRecord, remove_record
from .tracking.recorder import Recorder, finalize_record, write_auxiliary_set, write_meta
from .tracking.storage import WriterLock, write_array
from .validation import check_int, is_number
from .version import __version__


logger = get_logger(__name__)

#: `record.json["source"]` of a record made by [`record_checkpoints`] (a training run's record has no `source`).
CHECKPOINT_SOURCE = "checkpoints"
#: Auxiliary set holding the eval set's head outputs at every checkpoint (`tracin_cp` with `target="eval"`).
CHECKPOINT_QUERY = "checkpoint_query"

_CHECKPOINT_PREFIX = "checkpoint-"


def checkpoint_summary(record: TrainingRecord) -> dict[str, Any] | None:
    """For a record made from checkpoints: `{"count", "names", "weights", "weights_from"}`; `None` for a record of a
    training run."""
    if record.meta.get("source") != CHECKPOINT_SOURCE:
        return None
    checkpoints = record.meta.get("checkpoints") or {}
    names = list(checkpoints.get("names") or [])
    return {
        "count": len(names),
        "names": names,
        "weights": list(checkpoints.get("weights") or []),
        "weights_from": checkpoints.get("weights_from"),
    }


def trainer_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """The `checkpoint-<step>` folders of a `Trainer` output directory, oldest first (by step)."""
    output_dir = Path(output_dir)
    found = []
    for child in output_dir.iterdir() if output_dir.is_dir() else ():
        suffix = child.name[len(_CHECKPOINT_PREFIX):]
        if child.is_dir() and child.name.startswith(_CHECKPOINT_PREFIX) and suffix.isdigit():
            found.append((int(suffix), child))
    return [path for _, path in sorted(found)]


def _checkpoint_sources(checkpoints: Any) -> list[tuple[str, nn.Module | Path]]:
    """`(name, model or directory)` for every checkpoint, in the order given (a Trainer output dir expanded by step)."""
    if isinstance(checkpoints, (str, os.PathLike, nn.Module)):
        checkpoints = [checkpoints]
    try:
        items = list(checkpoints)
    except TypeError:
        raise InvalidArgumentError(
            f"`checkpoints` must be a model, a checkpoint directory or a list of them, got "
            f"{type(checkpoints).__name__}."
        ) from None
    if not items:
        raise InvalidArgumentError(
            "`checkpoints` is empty: pass at least one model or checkpoint directory (e.g. the `checkpoint-*` folders "
            "of a finished Trainer run, oldest first)."
        )
    sources: list[tuple[str, nn.Module | Path]] = []
    for position, item in enumerate(items):
        if isinstance(item, nn.Module):
            config = getattr(item, "config", None)
            label = getattr(config, "_name_or_path", None) or type(item).__name__
            sources.append((f"{label} (object {position})", item))
            continue
        if not isinstance(item, (str, os.PathLike)):
            raise InvalidArgumentError(
                f"Checkpoint {position} is a {type(item).__name__}; pass an `nn.Module` (e.g. `trainer.model`) or the "
                "path of a directory written by `save_pretrained` / a Trainer checkpoint."
            )
        path = Path(item)
        if not path.is_dir():
            raise InvalidArgumentError(f"Checkpoint {str(item)!r} is not a directory (no such folder).")
        expanded = trainer_checkpoints(path)
        if expanded:
            also = " (the model saved at its top level is not included: pass it too if you want it)" if (
                path / "config.json").is_file() else ""
            logger.info(f"hf_prune: {str(path)!r} holds {len(expanded)} Trainer checkpoints; scoring them by step{also}.")
            sources.extend((str(child), child) for child in expanded)
        elif (path / "config.json").is_file():
            sources.append((str(path), path))
        else:
            hint = (" It holds a PEFT adapter: load it (`PeftModel.from_pretrained(base_model, path)`) and pass the "
                    "model object." if (path / "adapter_config.json").is_file() else "")
            raise InvalidArgumentError(
                f"Checkpoint {str(item)!r} has no `config.json` and no `checkpoint-<step>` folders: it is neither a "
                f"saved model nor a Trainer output directory.{hint} Pass model objects for models saved another way."
            )
    return sources


def load_checkpoint(path: str | os.PathLike) -> nn.Module:
    """Load a saved classifier: the class named in its `config.architectures`, else the sequence and image
    classification auto classes."""
    import transformers

    from .models import register_auto_classes

    register_auto_classes()  # hf_prune's own small CNN (the built-in image tasks' model)
    try:
        config = transformers.AutoConfig.from_pretrained(str(path))
    except (OSError, ValueError) as err:
        raise InvalidArgumentError(
            f"Checkpoint {str(path)!r} could not be read as a transformers model ({err}). Load it yourself and pass "
            "the model object."
        ) from err
    for architecture in getattr(config, "architectures", None) or []:
        model_class = getattr(transformers, architecture, None)
        if model_class is not None and hasattr(model_class, "from_pretrained"):
            return model_class.from_pretrained(str(path))
    for auto in (transformers.AutoModelForSequenceClassification, transformers.AutoModelForImageClassification):
        try:
            return auto.from_pretrained(str(path))
        except ValueError:
            continue
    raise UnsupportedModelError(
        f"Checkpoint {str(path)!r} ({type(config).__name__}) is not a sequence or image classifier transformers can "
        "load by itself. Load it yourself and pass the model object."
    )


def logged_learning_rate(path: str | os.PathLike) -> float | None:
    """The learning rate a Trainer last logged at or before a checkpoint's step (its `trainer_state.json`), if any."""
    state_path = Path(path) / "trainer_state.json"
    if not state_path.is_file():
        return None
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    step = state.get("global_step")
    rate = None
    for entry in state.get("log_history") or []:
        if "learning_rate" in entry and (step is None or entry.get("step", 0) <= step):
            rate = entry["learning_rate"]
    try:
        return float(rate) if rate is not None and math.isfinite(float(rate)) else None
    except (TypeError, ValueError):
        return None


def checkpoint_weights(
    sources: list[tuple[str, nn.Module | Path]], learning_rates: Sequence[float] | None
) -> tuple[list[float], str]:
    """TracIn-CP's `η_k`: the given `learning_rates`, else the rates logged in every checkpoint's `trainer_state.json`,
    else 1 for every checkpoint. Returns the weights and where they came from."""
    count = len(sources)
    if learning_rates is not None:
        if isinstance(learning_rates, (str, bytes)) or not isinstance(learning_rates, Sequence):
            raise InvalidArgumentError(
                f"`learning_rates` must be a list of {count} numbers (one per checkpoint), got {learning_rates!r}."
            )
        values = list(learning_rates)
        valid = all(
            is_number(v) and math.isfinite(v) and v >= 0 for v in values
        )
        if len(values) != count or not valid or not any(v > 0 for v in values):
            raise InvalidArgumentError(
                f"`learning_rates` must hold {count} finite, non-negative numbers, not all zero (one per checkpoint, "
                f"in the order of `checkpoints`), got {values!r}."
            )
        return [float(v) for v in values], "learning_rates"
    logged = [logged_learning_rate(source) if isinstance(source, Path) else None for _, source in sources]
    if all(rate is not None for rate in logged) and any(rate > 0 for rate in logged):
        return [float(rate) for rate in logged], "trainer_state"
    missing = [name for (name, _), rate in zip(sources, logged) if rate is None]
    if count > 1:
        logger.info(
            "hf_prune: no logged learning rate for checkpoint(s) "
            f"{missing[:3] or [name for name, _ in sources][:3]}; weighting every checkpoint equally "
            "(pass `learning_rates=` for TracIn-CP's learning-rate weights)."
        )
    return [1.0] * count, "uniform"


def _check_head(head: HeadInfo, name: str, num_classes: int, label_column: str, named: bool,
                reference: HeadInfo | None, reference_name: str | None) -> None:
    check_classifier(head.num_classes, f"the head `{head.name}` of checkpoint {name!r}")
    if head.num_classes != num_classes:
        where = "its `ClassLabel` names" if named else f"its largest label id is {num_classes - 1}"
        raise UnsupportedModelError(
            f"Checkpoint {name!r}: its head `{head.name}` has {head.num_classes} outputs, but the dataset's label "
            f"column `{label_column}` has {num_classes} classes ({where}). The checkpoint was trained for other "
            "classes, or is not this dataset's classifier: pass checkpoints of a model trained on this label column"
            + ("" if named else ", or cast the column to a `ClassLabel` listing every class (`dataset.cast_column("
               f"{label_column!r}, ClassLabel(names=[...]))`) if some classes have no row here") + "."
        )
    if reference is not None and (head.name, head.feature_dim, head.has_bias) != (
        reference.name, reference.feature_dim, reference.has_bias
    ):
        raise UnsupportedModelError(
            f"Checkpoints {reference_name!r} and {name!r} disagree on the head: `{reference.name}` with "
            f"{reference.feature_dim} inputs (bias {reference.has_bias}) against `{head.name}` with {head.feature_dim} "
            f"inputs (bias {head.has_bias}). Pass checkpoints of one model architecture (one training run)."
        )


def _forward_pass(trainer: Any, indexed: Any, what: str, name: str) -> dict[str, np.ndarray]:
    """`capture_head` over `indexed`, every row exactly once, in row order."""
    captured = trainer.capture_head(indexed, with_index=True)
    index = captured.get("index")
    rows = len(indexed)
    if index is None or len(index) != rows or not np.array_equal(np.sort(index), np.arange(rows)):
        raise RecordError(
            f"The forward pass of checkpoint {name!r} over the {what} did not return every row exactly once "
            f"({0 if index is None else len(index)} values for {rows} rows); the data collator or a transform drops "
            "or repeats rows."
        )
    order = np.argsort(index, kind="stable")
    return {key: captured[key][order] for key in ("features", "logits", "labels")}


def _run_checkpoint(
    model: nn.Module, name: str, passes: list[tuple[Any, np.ndarray, str]], *, num_classes: int, label_column: str,
    named: bool, data_collator: Any, batch_size: int, head_module: str | None, scratch_dir: str,
    reference: HeadInfo | None, reference_name: str | None,
) -> tuple[HeadInfo, list[dict[str, np.ndarray]]]:
    """Forward passes of one checkpoint over each `(indexed dataset, labels, what)`; the model is left as it was."""
    from .config import PruneArguments
    from .trainer import PruneTrainer

    config = getattr(model, "config", None)
    check_problem_type(model, f"Checkpoint {name!r}'s")
    head = find_head(model, head_module, getattr(config, "num_labels", None))
    _check_head(head, name, num_classes, label_column, named, reference, reference_name)
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else None
    # A `with_transform` dataset reads its raw columns (e.g. images) in the transform: they must reach it.
    transformed = any(indexed.format.get("type") == "custom" for indexed, _, _ in passes)
    args = PruneArguments(
        output_dir=scratch_dir, per_device_eval_batch_size=batch_size, head_module=head_module, report_to=[],
        save_strategy="no", logging_strategy="no", disable_tqdm=True, dataloader_pin_memory=torch.cuda.is_available(),
        remove_unused_columns=not transformed,
    )
    if args.world_size > 1:
        raise UnsupportedModelError(
            "`from_checkpoints` runs in one process; it was started under several (`accelerate launch`/`torchrun`). "
            "Run it as a plain `python` script."
        )
    probe = HeadProbe(head)
    trainer: Any = None

    def verify_logits(module: nn.Module, inputs: Any, output: Any) -> None:
        # Once: the probed head must produce the model's logits (the check `PruneTrainer` makes on its first step).
        if probe.armed:
            trainer.prune_session.verify_head_once(output)

    handle = model.register_forward_hook(verify_logits)
    was_training = model.training
    try:
        # `capture_head` is PruneTrainer's eval-mode pass (its dataloader, collator, device placement, head probe).
        trainer = PruneTrainer(model=model, args=args, data_collator=data_collator)
        trainer.prune_session.attach_head(head, probe)
        outputs = []
        for indexed, labels, what in passes:
            values = _forward_pass(trainer, indexed, what, name)
            if not np.array_equal(values["labels"], labels):
                raise RecordError(
                    f"The labels reaching checkpoint {name!r} differ from the {what}'s label column `{label_column}` "
                    "(a transform or collator changes them); pass a dataset whose label column is the one the model "
                    "receives as `labels`."
                )
            bad = np.flatnonzero(~np.isfinite(values["logits"]).all(axis=1) | ~np.isfinite(values["features"]).all(1))
            if len(bad):
                raise RecordError(
                    f"Checkpoint {name!r} gives non-finite logits or head inputs on {len(bad)} rows of the {what} (e.g. "
                    f"rows {bad[:5].tolist()}): its weights diverged or those rows hold NaN/inf. Drop that checkpoint."
                )
            outputs.append(values)
    finally:
        handle.remove()
        probe.remove()
        model.train(was_training)
        if device is not None and next(model.parameters()).device != device:
            model.to(device)  # the Trainer placed it on its device; the caller's model goes back where it was
    return head, outputs


def _describe_model(model: nn.Module) -> dict[str, Any]:
    config = getattr(model, "config", None)
    return {
        "class": type(model).__name__,
        "name_or_path": getattr(config, "_name_or_path", None) or None,
        "num_parameters": int(sum(p.numel() for p in model.parameters())),
    }


def _residual(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    residual = torch.softmax(logits, dim=-1)
    residual[torch.arange(len(labels)), labels] -= 1.0
    return residual


def checkpoint_record_dir(output_dir: str | os.PathLike | None = None) -> Path:
    """Where [`record_checkpoints`] writes: `<output_dir>/prune_record` (as `PruneTrainer`), by default under a fresh
    directory of the hf_prune cache (`hf_prune.cache.new_run_dir`)."""
    from .cache import new_run_dir

    base = Path(output_dir) if output_dir is not None else new_run_dir()
    return base / "prune_record"


def _prepare_record_dir(record_dir: Path) -> None:
    if not record_dir.exists():
        return
    if (record_dir / RECORD_META).is_file():
        try:
            source = json.loads((record_dir / RECORD_META).read_text()).get("source")
        except (OSError, ValueError, AttributeError):
            source = None
        if source != "checkpoints":
            # A training run's record cannot be made again without training again: never replace it.
            raise RecordError(
                f"{str(record_dir)!r} holds the record of a training run (PruneTrainer), which the checkpoints' "
                "record would replace and which cannot be recovered without training again. Pass another "
                "`output_dir` (e.g. `output_dir='out/from_checkpoints'`), or omit it to write under the hf_prune "
                "cache; or, if you no longer need that run's record, delete the folder yourself first."
            )
        logger.warning(f"Replacing the earlier checkpoints' record at {record_dir}.")
        remove_record(record_dir)
    elif any(record_dir.iterdir()):
        raise RecordError(
            f"{str(record_dir)!r} is not empty and holds no hf_prune record; refusing to write a record into it. Pass "
            "another `output_dir`."
        )


@contextlib.contextmanager
def _writing_record(record_dir: Path) -> Iterator[None]:
    """Hold `record_dir` for writing: one writer at a time, an earlier record replaced, and no half-written record
    left behind by a failure."""
    record_dir.parent.mkdir(parents=True, exist_ok=True)
    lock = WriterLock(record_dir)
    lock.acquire()
    try:
        _prepare_record_dir(record_dir)
        try:
            yield
        except BaseException:
            remove_record(record_dir)
            raise
    finally:
        lock.release()


def record_checkpoints(
    checkpoints: Any,
    dataset: Any,
    record_dir: str | os.PathLike,
    *,
    data_collator: Any = None,
    label_column: str | None = None,
    eval_dataset: Any = None,
    learning_rates: Sequence[float] | None = None,
    batch_size: int = 64,
    head_module: str | None = None,
) -> TrainingRecord:
    """Write a training record from saved checkpoints: one forward pass per checkpoint, one record epoch each.

    Args:
        checkpoints (`nn.Module`, `str` or a list of them): Models (`PreTrainedModel` or any `nn.Module` whose last
            `nn.Linear` produces the logits), directories written by `save_pretrained` / a Trainer checkpoint, or a
            Trainer `output_dir` (its `checkpoint-<step>` folders, by step). Oldest first: scores that read early
            epochs (`el2n`, `grand`) read the first checkpoints. Directories are loaded one at a time.
        dataset (`datasets.Dataset`): The training set to score, with an integer label column; its other columns
            must be what the model takes (tokenized or transformed as for training).
        record_dir (`str`): The record directory to write (an existing hf_prune record there is replaced).
        data_collator (*optional*): Batches rows for the model (default: transformers' `default_data_collator`; use
            `DataCollatorWithPadding(tokenizer)` for unpadded text).
        label_column (`str`, *optional*): Default: `label`, then `labels`.
        eval_dataset (`datasets.Dataset`, *optional*): Held-out rows, passed through every checkpoint too: their
            head outputs at every checkpoint feed `tracin_cp`'s eval influence, those at the last checkpoint the
            run's eval accuracy (and so the default selector's held-out memorisation gap).
        learning_rates (`list[float]`, *optional*): TracIn-CP's weight `η_k` of each checkpoint. Default: the learning
            rate each checkpoint's `trainer_state.json` last logged, else 1 for every checkpoint.
        batch_size (`int`): Rows per forward pass.
        head_module (`str`, *optional*): Dotted name of the head when it is not found automatically.

    Returns:
        [`TrainingRecord`]: with `meta["source"] == "checkpoints"` and `meta["checkpoints"]` (names, weights).

    Raises:
        [`UnsupportedModelError`]: a head whose outputs are not the dataset's classes, heads that differ between
            checkpoints, a regression or multi-label model.
        [`InvalidArgumentError`], [`DatasetError`]: no checkpoint, a missing label column, bad `learning_rates`.
    """
    check_train_dataset(dataset, "dataset")
    label_column = resolve_label_column(dataset, label_column)
    labels = read_labels(dataset, label_column)
    named = class_names(dataset, label_column) is not None
    num_classes = dataset_num_classes(dataset, label_column, labels)
    check_int("batch_size", batch_size, minimum=1, numpy=False)
    passes = [(add_index_column(dataset), labels, "training set")]
    eval_labels = None
    if eval_dataset is not None:
        eval_labels = _eval_labels(eval_dataset, label_column, num_classes)
        passes.append((add_index_column(eval_dataset), eval_labels, "eval set"))
    sources = _checkpoint_sources(checkpoints)
    weights, weights_from = checkpoint_weights(sources, learning_rates)

    record_dir = Path(record_dir)
    with _writing_record(record_dir):
        meta, eval_parts = _write_passes(
            sources, weights, passes, record_dir, num_classes=num_classes, label_column=label_column, named=named,
            data_collator=data_collator, batch_size=batch_size, head_module=head_module,
        )
        meta.update({
            # Which call wrote the record: a pruner refuses a record another call wrote over its own.
            "run_id": uuid.uuid4().hex,
            "dataset": dataset_signature(dataset, label_column),
            "class_names": class_names(dataset, label_column),
            "checkpoints": {"names": [name for name, _ in sources], "weights": weights, "weights_from": weights_from,
                            "eval_rows": None if eval_labels is None else len(eval_labels)},
        })
        if eval_parts:
            _write_eval_sets(record_dir, eval_parts, eval_labels, meta)
        finalize_record(record_dir, 1, meta)
    return TrainingRecord(record_dir)


def _eval_labels(eval_dataset: Any, label_column: str, num_classes: int) -> np.ndarray:
    """The eval set's labels, refused when some are not among the training set's `num_classes` classes."""
    check_train_dataset(eval_dataset, "eval_dataset")
    eval_labels = read_labels(eval_dataset, resolve_label_column(eval_dataset, label_column))
    bad = np.flatnonzero(eval_labels >= num_classes)
    if len(bad):
        raise DatasetError(
            f"`eval_dataset` has label ids outside [0, {num_classes}) (e.g. rows {bad[:5].tolist()} with label "
            f"{int(eval_labels[bad[0]])}), but the training set and the checkpoints' heads have {num_classes} "
            "classes. Pass held-out rows of the same classes, encoded as the training set."
        )
    return eval_labels


def _write_eval_sets(record_dir: Path, eval_parts: list[dict[str, np.ndarray]], eval_labels: np.ndarray,
                     meta: dict[str, Any]) -> None:
    """Store the eval set's head outputs: at the last checkpoint as `query` (what a training run stores after
    training), at every checkpoint as `checkpoint_query` (stacked, checkpoint first)."""
    last = eval_parts[-1]
    query = {"features": last["features"], "logits": last["logits"], "labels": eval_labels}
    every = {"features": np.stack([p["features"] for p in eval_parts]),
             "logits": np.stack([p["logits"] for p in eval_parts]), "labels": eval_labels}
    for name, arrays in (("query", query), (CHECKPOINT_QUERY, every)):
        write_auxiliary_set(record_dir, name, arrays, meta)


def _write_passes(
    sources: list[tuple[str, nn.Module | Path]], weights: list[float], passes: list, record_dir: Path, *,
    num_classes: int, label_column: str, named: bool, data_collator: Any, batch_size: int, head_module: str | None,
) -> tuple[dict[str, Any], list[dict[str, np.ndarray]]]:
    """Run every checkpoint and append its training-set pass to the record as one epoch; return the metadata and the
    eval-set passes."""
    labels = passes[0][1]
    n = len(labels)
    recorder: Recorder | None = None
    meta: dict[str, Any] = {}
    reference: tuple[HeadInfo, str] | None = None
    eval_parts: list[dict[str, np.ndarray]] = []
    step = 0
    seconds: list[float] = []
    scratch_dir = str(record_dir.parent)
    for epoch, ((name, source), weight) in enumerate(zip(sources, weights)):
        start = time.perf_counter()
        model = load_checkpoint(source) if isinstance(source, Path) else source
        head, outputs = _run_checkpoint(
            model, name, passes, num_classes=num_classes, label_column=label_column, named=named,
            data_collator=data_collator, batch_size=batch_size, head_module=head_module, scratch_dir=scratch_dir,
            reference=reference[0] if reference else None, reference_name=reference[1] if reference else None,
        )
        if recorder is None:
            reference = (head, name)
            meta = _initial_meta(head, n, model)
            record_dir.mkdir(parents=True, exist_ok=True)
            write_meta(record_dir, meta)
            write_array(record_dir, "labels", labels.astype("<i8"))
            recorder = Recorder(record_dir, 0, head.num_classes, head.feature_dim, True, "float32", 0, 1 << 16)
        meta["model"] = _describe_model(model)
        if isinstance(source, Path):
            del model  # one loaded checkpoint in memory at a time
        train = outputs[0]
        recorder.epoch = epoch
        y_all = torch.tensor(labels, dtype=torch.int64)
        for lo in range(0, n, batch_size):
            hi = min(lo + batch_size, n)
            logits = torch.from_numpy(np.ascontiguousarray(train["logits"][lo:hi], dtype=np.float32))
            y = y_all[lo:hi]
            recorder.add_microbatch(
                index=torch.arange(lo, hi, dtype=torch.int64), labels=y, logits=logits,
                logit_grad=_residual(logits, y), features=torch.from_numpy(train["features"][lo:hi]), grad_divisor=1.0,
            )
            recorder.end_step(step, (weight, weight), 1.0, False, 0, None)
            step += 1
        recorder.epochs_completed = epoch + 1
        recorder.commit()
        if len(outputs) > 1:
            eval_parts.append(outputs[1])
        seconds.append(time.perf_counter() - start)
        logger.info(f"hf_prune: scored checkpoint {epoch + 1}/{len(sources)} ({name}) in {seconds[-1]:.1f} s.")
    recorder.commit(complete=True)
    meta["timing"] = {"checkpoint_seconds": seconds}
    return meta, eval_parts


def _initial_meta(head: HeadInfo, num_samples: int, model: nn.Module) -> dict[str, Any]:
    return {
        "format_version": RECORD_FORMAT_VERSION,
        "hf_prune_version": __version__,
        "status": "running",
        "source": CHECKPOINT_SOURCE,
        "num_samples": num_samples,
        "head": {"name": head.name, "num_classes": head.num_classes, "feature_dim": head.feature_dim,
                 "has_bias": head.has_bias},
        "track_features": True,
        "feature_dtype": "float32",
        "head_state_size": 0,
        # No optimizer ran: the record holds forward passes of fixed models (scores tracing steps refuse it).
        "optimizer": {"type": None, "head_trained": False},
        "world_size": 1,
        "model": _describe_model(model),
        "training": {"source": CHECKPOINT_SOURCE},
    }
