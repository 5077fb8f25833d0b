"""[`RecordingSession`]: everything a recording trainer keeps between its hooks, in one object.

The trainer's hooks ([`PruneTrainerMixin`](hf_prune.trainer.PruneTrainerMixin)) only hand over what the Trainer
computes (the model, the optimizer, the batch, the step); the session checks the model and the head, opens the
[`Recorder`] on the first recorded micro-batch, closes each optimizer step, and finalizes the record after training.
It holds no reference to the Trainer.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import RecordError, UnsupportedModelError
from ..logging import get_logger
from .checks import (
    batch_labels,
    check_class_names,
    check_classifier,
    check_head_logits,
    check_label_range,
    check_problem_type,
    head_gradient_error,
    model_num_labels,
)
from .dataset import check_train_dataset, class_names, read_labels, resolve_label_column
from .head import HeadInfo, HeadProbe, find_head, head_fingerprint
from .indexing import INDEX_COLUMN
from .metadata import training_meta
from .optimizer import (
    ADAM_TYPES,
    describe_optimizer,
    head_learning_rates,
    head_moments,
    optimizer_step_count,
    unwrap_optimizer,
)
from .record import looks_like_record, remove_record
from .recorder import Recorder, finalize_record, read_checkpoint_manifest, write_auxiliary_set, write_meta
from .storage import WriterLock, write_array


if TYPE_CHECKING:  # pragma: no cover
    from ..config import PruneArguments


logger = get_logger(__name__)

#: Optimizer steps at the start of a run whose head gradient is compared with the recorded per-sample gradients.
_CHECKED_STEPS = 3


class RecordingSession:
    """The training record of one trainer: its training labels, the head and its probe, the recorder and the metadata.

    A recording trainer makes one session from its arguments and training set and reaches it as
    `trainer.prune_session`. Its hooks call, in the order a run reaches them: [`open_run`] around `Trainer.train`,
    [`start`] and [`record_microbatch`] in every training step, [`check_head_gradient`] and [`end_step`] around every
    optimizer step, [`begin_epoch`]/[`end_epoch`], [`write_checkpoint_manifest`] with every checkpoint, and
    [`finalize`] after training. [`capture`] runs the head probe over an evaluation set.

    Args:
        args ([`PruneArguments`]): The trainer's arguments (the trainer's own object: `record_dir`, `head_module`,
            what to track).
        dataset (`datasets.Dataset`, *optional*): The training set as the user passed it (without the index column).

    Attributes:
        labels (`np.ndarray` or `None`): Label of every training row (int64, in source-index order).
        label_column (`str` or `None`): The training set's label column.
        head ([`HeadInfo`] or `None`), probe ([`HeadProbe`] or `None`): The classification head and its hooks, once
            found (on the first recorded micro-batch or the first [`capture`]) or attached ([`attach_head`]).
        recorder ([`Recorder`] or `None`): The writer of this run's rows, from the first recorded micro-batch on.
        meta (`dict` or `None`): The run's `record.json` (the finalized one after [`finalize`] on the main process).
        epoch (`int`): The epoch being trained.
        timing (`dict[str, float]`): Seconds spent training (`train_seconds`) and on the eval pass (`query_seconds`).

    Raises:
        [`DatasetError`]: `dataset` is not a `datasets.Dataset` with an integer label column.
        [`RecordError`]: `dataset` already holds hf_prune's index column (it was taken from a PruneTrainer).

    Example:

    ```python
    >>> trainer = PruneTrainer(model=model, args=PruneArguments(output_dir="out"), train_dataset=train_ds)
    >>> session = trainer.prune_session
    >>> session.record_dir, session.label_column
    ('out/prune_record', 'label')
    >>> trainer.train()
    >>> session.head.name, session.meta["status"]
    ('classifier', 'complete')
    ```
    """

    def __init__(self, args: PruneArguments, dataset: Any = None):
        self.args = args
        self.dataset = dataset
        #: The id of the record this session's run finished (`record.json`'s `run_id`); `None` until then.
        self.run_id: str | None = None
        self.label_column: str | None = None
        self.labels: np.ndarray | None = None
        if dataset is not None:
            check_train_dataset(dataset, "train_dataset")
            self.label_column = resolve_label_column(dataset, args.label_column, args.label_names or [])
            self.labels = read_labels(dataset, self.label_column)
            if dataset.column_names and INDEX_COLUMN in dataset.column_names:
                raise RecordError(
                    f"The training set already has hf_prune's private column `{INDEX_COLUMN}`; pass the original "
                    "dataset, not one taken from a PruneTrainer."
                )
        self.head: HeadInfo | None = None
        self.probe: HeadProbe | None = None
        self.recorder: Recorder | None = None
        self.meta: dict[str, Any] | None = None
        self.epoch = 0
        self.timing: dict[str, float] = {}
        self._resume_counts: dict[str, Any] | None = None
        self._verify_pending = True
        self._checked_steps = 0
        self._last_grad_norm: float | None = None

    @property
    def record_dir(self) -> str:
        """Where the record is written: `args.record_dir`, by default `<output_dir>/prune_record`."""
        return self.args.record_dir or os.path.join(self.args.output_dir, "prune_record")

    @property
    def recording(self) -> bool:
        """Whether this run's recorder is open (from the first recorded micro-batch on)."""
        return self.recorder is not None

    # ------------------------------------------------------------------ a run
    @contextlib.contextmanager
    def open_run(self, checkpoint: str | None, accelerator: Any, is_main_process: bool) -> Iterator[None]:
        """Hold the record directory for one training run.

        Claims it (one writer per record), then prepares it: resuming, the record is cut back to the row counts
        saved in `checkpoint`; training from the start, an existing record is removed. The claim is released on exit.

        Args:
            checkpoint (`str`, *optional*): The Trainer checkpoint the run resumes from.
            accelerator (`accelerate.Accelerator`): The trainer's, to wait for every process.
            is_main_process (`bool`): Whether this is the process that writes shared files.

        Raises:
            [`RecordError`]: another run holds the record, or `checkpoint` has no record manifest.
        """
        lock = self._claim(is_main_process)
        try:
            if checkpoint:
                self._resume_counts = read_checkpoint_manifest(checkpoint, self.args.process_index)
                written_for = self._resume_counts.get("record_dir")
                if is_main_process and written_for and written_for != str(Path(self.record_dir).resolve()):
                    # A moved output folder is fine; another run's checkpoint would mix two runs into one record.
                    logger.warning(
                        f"hf_prune: checkpoint {str(checkpoint)!r} was written by the run recorded at {written_for!r}, "
                        f"not at {str(self.record_dir)!r}. If it is another run's checkpoint, this record will mix "
                        "the two runs: resume from a checkpoint of this run's `output_dir` instead. (If you moved "
                        "the output folder, ignore this.)"
                    )
            else:
                self._resume_counts = None
                refused = None
                if is_main_process and os.path.isdir(self.record_dir):
                    # Only a record is replaced: a `record_dir` pointing at any other folder would delete its files.
                    entries = os.listdir(self.record_dir)
                    if entries and not looks_like_record(self.record_dir):
                        refused = (
                            f"`record_dir` {str(self.record_dir)!r} is a folder that holds no hf_prune record "
                            f"({len(entries)} entries, e.g. {sorted(entries)[:3]}); training would replace it. Point "
                            "`record_dir` at a new or empty folder (the default is `<output_dir>/prune_record`)."
                        )
                    else:
                        if entries:
                            logger.warning(f"Overwriting the existing training record at {self.record_dir}.")
                        remove_record(self.record_dir)
                if self.args.world_size > 1:
                    from accelerate.utils import broadcast_object_list

                    refused = broadcast_object_list([refused])[0]
                if refused is not None:
                    raise RecordError(refused)
                accelerator.wait_for_everyone()
            self.recorder = None
            self._verify_pending = True
            yield
        finally:
            lock.release()

    def _claim(self, is_main_process: bool) -> WriterLock:
        # One run per record: a second run started on the same record_dir would interleave its rows with this one's.
        lock = WriterLock(self.record_dir)
        refused = None
        if is_main_process:
            try:
                lock.acquire()
            except RecordError as err:
                refused = str(err)
        if self.args.world_size > 1:  # every process stops, not only the main one (the others would wait forever)
            from accelerate.utils import broadcast_object_list

            refused = broadcast_object_list([refused])[0]
        if refused is not None:
            raise RecordError(refused)
        return lock

    def start(self, model: torch.nn.Module, optimizer: Any, is_main_process: bool) -> None:
        """Open the recorder, once per run, on the first recorded micro-batch.

        Checks that `model` is a single-label classifier whose head covers the training labels, describes the
        optimizer, and (training from the start) writes the metadata and the labels.

        Args:
            model (`nn.Module`): The model being trained, unwrapped from any distributed wrapper.
            optimizer (`torch.optim.Optimizer`): The Trainer's optimizer (Accelerate's wrapper is looked through).
            is_main_process (`bool`): Whether this is the process that writes shared files.

        Raises:
            [`UnsupportedModelError`]: a regression, multi-label or single-output model, or labels beyond the head.
            [`HeadNotFoundError`]: no head, or `head_module` names none.
        """
        if self.recorder is not None:
            return
        args = self.args
        check_problem_type(model)
        num_labels = model_num_labels(model)
        check_classifier(num_labels)
        head = find_head(model, args.head_module, num_labels)
        check_classifier(head.num_classes, f"the head `{head.name}`")
        check_label_range(self.labels, head, self.label_column)
        if self.dataset is not None and self.label_column is not None:
            check_class_names(class_names(self.dataset, self.label_column), head, self.label_column)
        optimizer_info = describe_optimizer(optimizer, head)
        head_state_size = 0
        if args.track_head_state == "auto" and optimizer_info["type"] in ADAM_TYPES:
            # Second moment (or AMSGrad's running max) and first moment of the head, after each step.
            head_state_size = 2 * head.num_parameters
        self.attach_head(head, HeadProbe(head))
        self.meta = training_meta(args, model, head, optimizer_info, head_state_size, self.dataset, self.label_column)
        if is_main_process and self._resume_counts is None:
            os.makedirs(self.record_dir, exist_ok=True)
            write_meta(self.record_dir, self.meta)
            write_array(self.record_dir, "labels", self.labels.astype("<i8"))
        self.recorder = Recorder(
            self.record_dir,
            rank=args.process_index,
            num_classes=head.num_classes,
            feature_dim=head.feature_dim,
            track_features=args.track_features,
            feature_dtype=args.feature_dtype,
            head_state_size=head_state_size,
            flush_rows=args.record_flush_rows,
            resume_counts=self._resume_counts,
        )
        self.recorder.epoch = self.epoch

    # ------------------------------------------------------------------ the head
    def attach_head(self, head: HeadInfo, probe: HeadProbe) -> None:
        """Use `head` and its `probe` for this session's passes (e.g. a head the caller found and checked). Removing
        the probe's hooks stays with whoever made it."""
        self.head, self.probe = head, probe

    def ensure_probe(self, model: torch.nn.Module) -> HeadProbe:
        """The head probe, found in `model` (unwrapped) by `args.head_module` or the usual names if none is attached."""
        if self.probe is None:
            head = find_head(model, self.args.head_module, model_num_labels(model))
            self.attach_head(head, HeadProbe(head))
        return self.probe

    @contextlib.contextmanager
    def capturing(self) -> Iterator[HeadProbe]:
        """Arm the probe for one forward (and backward) pass; it captures nothing outside."""
        probe = self.probe
        probe.arm()
        try:
            yield probe
        finally:
            probe.disarm()

    @property
    def needs_head_check(self) -> bool:
        """Whether the armed probe's pass is the first one, whose logits [`verify_head_once`] compares."""
        return self._verify_pending and self.probe is not None and self.probe.armed

    def verify_head_once(self, outputs: Any) -> None:
        """On the first call of a run, check that the probed head produced the model's `logits` (in `outputs`);
        later calls do nothing.

        Raises:
            [`UnsupportedModelError`]: the head's output is not the model's logits.
        """
        if not self._verify_pending:
            return
        self._verify_pending = False
        check_head_logits(self.head, self.probe, outputs)

    # ------------------------------------------------------------------ steps
    def record_microbatch(self, index: torch.Tensor, labels: torch.Tensor, scaler: Any = None) -> None:
        """Hand the probe's capture of one micro-batch (after its backward pass) to the recorder.

        Args:
            index (`torch.Tensor`): Source index of every row of the micro-batch.
            labels (`torch.Tensor`): Their class ids.
            scaler (`torch.amp.GradScaler`, *optional*): The mixed-precision loss scaler, whose scale is divided out
                of the logit gradient.
        """
        probe = self.probe
        if probe.logits is None:
            raise UnsupportedModelError(
                f"The head `{self.head.name}` was not called during the forward pass; it is not the module that "
                "produces the logits. Set `PruneArguments(head_module=...)`."
            )
        scaled = scaler is not None and scaler.is_enabled()
        scale = float(scaler.get_scale()) if scaled else 1.0
        self.recorder.add_microbatch(
            index=index,
            labels=labels,
            logits=probe.logits,
            logit_grad=probe.logit_grad,
            features=probe.features,
            grad_divisor=self.args.world_size * scale,
            allow_nonfinite=scaled,
        )

    def note_grad_norm(self, norm: Any) -> None:
        """Remember the gradient norm before clipping (it sets the step's clipping coefficient)."""
        self._last_grad_norm = float(norm) if norm is not None else None

    def clip_coefficient(self) -> float:
        """The factor gradient clipping applies to this step's gradient (1 when it does not clip)."""
        max_norm = float(self.args.max_grad_norm or 0.0)
        norm = self._last_grad_norm
        if max_norm <= 0 or norm is None or not math.isfinite(norm):
            return 1.0
        return min(1.0, max_norm / (norm + 1e-6))

    def check_head_gradient(self) -> None:
        """Before each of a run's first optimizer steps (one process only): warn, and note in the metadata, when the
        head's real gradient is not the sum of the recorded per-sample head gradients."""
        if self.recorder is None or self._checked_steps >= _CHECKED_STEPS or self.args.world_size > 1:
            return
        self._checked_steps += 1
        head = self.head
        expected = self.recorder.pending_head_gradient(head.has_bias)
        if expected is None or head.module.weight.grad is None:
            return
        error = head_gradient_error(head, expected, self.clip_coefficient())
        tolerance = 1e-2 if (self.args.fp16 or self.args.bf16) else 1e-3
        if error > tolerance:
            logger.warning(
                f"The head's gradient differs from the sum of per-sample head gradients by {error:.2e} (relative). "
                "The head is used more than once per forward, or an extra loss term reaches its parameters; "
                "influence estimates for this run are approximate."
            )
            self.meta.setdefault("warnings", []).append(f"head gradient mismatch {error:.2e}")

    def end_step(self, step: int, optimizer: Any, skipped: bool) -> None:
        """Close an optimizer step in the recorder: its learning rates, clipping, whether it was skipped, and the
        optimizer's state for the head (read after the update)."""
        recorder = self.recorder
        if recorder is None:
            return
        head = self.head
        optimizer = unwrap_optimizer(optimizer)
        recorder.end_step(
            step=step,
            lr=head_learning_rates(optimizer, head),
            clip=self.clip_coefficient(),
            skipped=skipped,
            opt_step=optimizer_step_count(optimizer, head),
            head_state=head_moments(optimizer, head) if "head_state" in recorder.stp else None,
        )
        self._last_grad_norm = None

    def begin_epoch(self, epoch: float | None) -> None:
        """Start epoch `floor(epoch)` (the Trainer's fractional epoch counter)."""
        self.epoch = math.floor(epoch + 1e-6) if epoch else 0
        if self.recorder is not None:
            self.recorder.epoch = self.epoch

    def end_epoch(self) -> None:
        """Count the current epoch as completed."""
        if self.recorder is not None:
            self.recorder.epochs_completed = self.epoch + 1

    def write_checkpoint_manifest(self, folder: str) -> None:
        """Commit the record and write its row counts into a Trainer checkpoint `folder` (what resuming cuts back to).
        Does nothing before the recorder is open."""
        if self.recorder is None:
            return
        os.makedirs(folder, exist_ok=True)
        self.recorder.write_checkpoint_manifest(folder)

    # ------------------------------------------------------------------ the end
    def finalize(
        self, accelerator: Any, is_main_process: bool, capture_query: Callable[[], dict[str, np.ndarray]] | None = None
    ) -> None:
        """Complete the record after training: commit every process's rows, run the eval pass, merge and checksum.

        Args:
            accelerator (`accelerate.Accelerator`): The trainer's, to wait for every process.
            is_main_process (`bool`): Whether this process writes the merged record.
            capture_query (`Callable`, *optional*): Returns the eval set's head outputs (stored as the `query` set);
                called on every process.

        Raises:
            [`RecordError`]: training recorded no step.
        """
        recorder = self.recorder
        if recorder is None and self._resume_counts is not None:
            # Resumed from the checkpoint after the last step (re-running a finished script with
            # `resume_from_checkpoint=True`): nothing was trained, and the finished run's record stands.
            from .record import TrainingRecord

            try:
                record = TrainingRecord(self.record_dir)
            except RecordError as err:
                raise RecordError(
                    "Resuming ran no step (the checkpoint is the run's last), and the record at "
                    f"{str(self.record_dir)!r} is not a finished one ({err}). Train from the start (`trainer.train()`)."
                ) from err
            self.run_id = record.meta.get("run_id")
            logger.info(f"hf_prune: nothing was left to train after the checkpoint; the finished run's record at "
                        f"{self.record_dir} stands.")
            return
        if recorder is None:
            raise RecordError(
                "Training ran no recorded step (empty epoch, or `max_steps=0`), so there is no record to prune from."
            )
        recorder.discard_pending()
        recorder.commit(complete=True)
        accelerator.wait_for_everyone()
        query = None
        if capture_query is not None:
            start = time.perf_counter()
            query = capture_query()
            self.timing["query_seconds"] = time.perf_counter() - start
        # An id for this run's record, the same on every process: a trainer that recorded checks it when it reads
        # the record back, so a later run's record written to the same place is not taken for its own.
        run_id = uuid.uuid4().hex
        if self.args.world_size > 1:
            from accelerate.utils import broadcast_object_list

            run_id = broadcast_object_list([run_id])[0]
        self.run_id = run_id
        if is_main_process:
            meta = dict(self.meta)
            meta["run_id"] = run_id
            meta["final_head"] = head_fingerprint(self.head.module)  # which model "the final model" is
            meta["timing"] = dict(self.timing)
            if query is not None:
                write_auxiliary_set(self.record_dir, "query", query, meta)
            meta = finalize_record(self.record_dir, int(self.args.world_size), meta)
            mismatched = meta["loss_check"]["not_cross_entropy"]
            if mismatched:
                logger.warning(
                    f"{mismatched} of {meta['loss_check']['captured']} recorded samples have a logit gradient that "
                    "is not a multiple of the softmax cross-entropy residual (label smoothing, class weights or an "
                    "extra loss term); SGD-Influence uses the least-squares weight of each sample."
                )
            self.meta = meta
        accelerator.wait_for_everyone()

    @torch.no_grad()
    def capture(
        self, model: torch.nn.Module, batches: Iterable[dict[str, Any]], prepare_inputs: Callable[[dict], dict],
        gather: Callable[[tuple], tuple], with_index: bool = False, label_names: list[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """One eval-mode forward pass of `model` over `batches`, returning the head's features, logits and labels.

        Args:
            model (`nn.Module`): The model as the Trainer runs it; put back in its previous mode afterwards.
            batches (iterable of `dict`): Collated batches (the Trainer's eval dataloader).
            prepare_inputs (`Callable`): Moves a batch to the model's device (`Trainer._prepare_inputs`).
            gather (`Callable`): Gathers tensors across processes, dropping padding duplicates
                (`Accelerator.gather_for_metrics`).
            with_index (`bool`): Also return the source index (the batches must carry the index column).
            label_names (`list[str]`, *optional*): Label keys tried before `labels` and `label`.

        Returns:
            `dict` with `features` `(m, d)`, `logits` `(m, C)`, `labels` `(m,)` (and `index`).
        """
        was_training = model.training
        model.eval()
        parts: dict[str, list[np.ndarray]] = {"features": [], "logits": [], "labels": [], "index": []}
        try:
            for inputs in batches:
                index = inputs.pop(INDEX_COLUMN, None)
                inputs = prepare_inputs(inputs)
                labels = batch_labels(inputs, label_names, self.label_column)
                with self.capturing() as probe:
                    model(**inputs)
                device = probe.logits.device
                gathered = gather(
                    (probe.features.float(), probe.logits.float(), labels.to(device))
                    + ((index.to(device),) if with_index and index is not None else ())
                )
                parts["features"].append(gathered[0].cpu().numpy())
                parts["logits"].append(gathered[1].cpu().numpy())
                parts["labels"].append(gathered[2].cpu().numpy().astype(np.int64))
                if len(gathered) > 3:
                    parts["index"].append(gathered[3].cpu().numpy().astype(np.int64))
        finally:
            model.train(was_training)
        return {key: np.concatenate(value) for key, value in parts.items() if value}
