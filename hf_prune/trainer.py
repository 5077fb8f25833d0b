"""`PruneTrainer`: the stock `transformers.Trainer` loop, plus a training record keyed by source index.

Nothing about training changes: same forward, same backward, same optimizer. Hooks on the classification head read
what the loop already computes (head input, logits, and the gradient of the optimised loss w.r.t. the logits), and a
callback closes each optimizer step with its learning rate, clipping coefficient and (for Adam) the head's second
moment. See [`TrainingRecord`](hf_prune.tracking.record.TrainingRecord) for the layout.
"""

from __future__ import annotations

import inspect
import math
import os
import time
from typing import Any

import numpy as np
import torch
from transformers import Trainer, TrainerCallback

from . import logging
from .config import PruneArguments, to_prune_arguments
from .errors import RecordError, UnsupportedModelError
from .tracking.dataset import (
    check_train_dataset,
    class_names,
    dataset_signature,
    read_labels,
    resolve_label_column,
)
from .tracking.head import HeadInfo, HeadProbe, find_head
from .tracking.indexing import INDEX_COLUMN, IndexCollator, add_index_column
from .tracking.record import RECORD_FORMAT_VERSION, TrainingRecord, remove_record
from .tracking.recorder import Recorder, finalize_record, read_checkpoint_manifest, write_meta
from .tracking.storage import WriterLock, write_array
from .version import __version__


logger = logging.get_logger(__name__)

_ADAM_TYPES = ("Adam", "AdamW")
_SUPPORTED_SWEEP_OPTIMIZERS = ("SGD", "Adam", "AdamW")


def last_complete_checkpoint(output_dir: str, rank: int = 0) -> str | None:
    """The newest `checkpoint-*` folder that the Trainer finished writing (its `trainer_state.json`, written last,
    exists) and that holds this process's record manifest; incomplete ones (a save killed midway) are skipped."""
    from .tracking.record import CHECKPOINT_MANIFEST

    if not os.path.isdir(output_dir):
        return None
    candidates = []
    for name in os.listdir(output_dir):
        if name.startswith("checkpoint-") and name[len("checkpoint-"):].isdigit():
            candidates.append((int(name[len("checkpoint-"):]), os.path.join(output_dir, name)))
    for _step, path in sorted(candidates, reverse=True):
        complete = os.path.isfile(os.path.join(path, "trainer_state.json"))
        manifest = os.path.isfile(os.path.join(path, CHECKPOINT_MANIFEST.format(rank=rank)))
        if complete and manifest:
            return path
        logger.warning(f"Skipping checkpoint {path}: incomplete (an interrupted save), not resumable.")
    return None


def _unwrap_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    # Accelerate's AcceleratedOptimizer (itself a torch Optimizer) wraps the real one in `.optimizer`.
    while isinstance(getattr(optimizer, "optimizer", None), torch.optim.Optimizer):
        optimizer = optimizer.optimizer
    return optimizer


def _find_group(optimizer: torch.optim.Optimizer, param: torch.nn.Parameter | None) -> dict | None:
    if param is None:
        return None
    for group in optimizer.param_groups:
        if any(p is param for p in group["params"]):
            return group
    return None


def describe_optimizer(optimizer: Any, head: HeadInfo) -> dict[str, Any]:
    """What the SGD-Influence recursion needs to know about the optimizer, for the head's parameters."""
    optimizer = _unwrap_optimizer(optimizer)
    kind = type(optimizer).__name__
    weight_group = _find_group(optimizer, head.module.weight)
    bias_group = _find_group(optimizer, head.module.bias) if head.has_bias else None
    description: dict[str, Any] = {"type": kind, "head_trained": weight_group is not None}
    if weight_group is None:
        return description
    bias_group = bias_group or weight_group

    def group_info(group: dict) -> dict[str, Any]:
        info = {"weight_decay": float(group.get("weight_decay", 0.0) or 0.0)}
        for key in ("momentum", "dampening", "eps"):
            if key in group:
                info[key] = float(group[key])
        for key in ("nesterov", "amsgrad", "maximize", "decoupled_weight_decay"):
            if key in group:
                info[key] = bool(group[key])
        if "betas" in group:
            info["betas"] = [float(b) for b in group["betas"]]
        return info

    description["weight_group"] = group_info(weight_group)
    description["bias_group"] = group_info(bias_group)
    description["decoupled_weight_decay"] = kind == "AdamW" or bool(weight_group.get("decoupled_weight_decay", False))
    return description


def check_classifier(num_outputs: int | None, what: str = "the model (`config.num_labels`)") -> None:
    """Refuse a model with a single output: transformers trains it as a regression (MSE), whatever the labels are."""
    if num_outputs is not None and num_outputs < 2:
        raise UnsupportedModelError(
            f"{what[0].upper()}{what[1:]} has {num_outputs} output: transformers treats `num_labels=1` as regression "
            "(mean-squared error on the label value), and hf_prune prunes single-label classification trained with "
            "softmax cross-entropy. Load the model with `num_labels=<number of classes>` (at least 2), e.g. "
            "`AutoModelForSequenceClassification.from_pretrained(name, num_labels=2)`."
        )


def check_problem_type(model, what: str = "The model's") -> None:
    """Refuse a model configured for regression or multi-label classification (`config.problem_type`)."""
    problem = getattr(getattr(model, "config", None), "problem_type", None)
    if problem in ("regression", "multi_label_classification"):
        raise UnsupportedModelError(
            f"{what} `config.problem_type` is {problem!r}; hf_prune supports single-label classification trained "
            "with softmax cross-entropy (`problem_type='single_label_classification'`)."
        )


class _RecordCallback(TrainerCallback):
    """Closes each optimizer step in the recorder (learning rate, clipping, skipped, optimizer state)."""

    def __init__(self, trainer: PruneTrainerMixin):
        self.trainer = trainer

    def on_epoch_begin(self, args, state, control, **kwargs):
        recorder = self.trainer._prune_recorder
        self.trainer._prune_epoch = math.floor(state.epoch + 1e-6) if state.epoch else 0
        if recorder is not None:
            recorder.epoch = self.trainer._prune_epoch

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.trainer._prune_check_head_gradient()

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.trainer._prune_end_step(state.global_step)

    def on_epoch_end(self, args, state, control, **kwargs):
        trainer = self.trainer
        if trainer._prune_recorder is not None:
            trainer._prune_recorder.epochs_completed = trainer._prune_epoch + 1
        score_epochs = getattr(args, "score_epochs", None)
        if score_epochs is not None and trainer._prune_epoch + 1 >= score_epochs:
            control.should_training_stop = True
        return control


class PruneTrainerMixin:
    """Adds hf_prune's training record to any `transformers.Trainer` subclass (see [`make_prune_trainer`]).

    The mixin takes exactly the arguments of the Trainer class it is mixed into. It overrides five hooks, each for one
    reason: `_set_signature_columns_if_needed` (keep the index column), `training_step` (pop the index, arm the head
    probe around forward+backward), `compute_loss` (check once that the probed head produces the model's logits),
    `_clip_grad_norm` (remember the pre-clip norm, which scales the step) and `_save_checkpoint` (commit the record
    with each checkpoint). `train` wraps the parent's to open, resume and finalize the record.
    """

    def __init__(self, *args, **kwargs):
        # Bind positional arguments by the parent's own signature, so the mixin works for any Trainer class.
        params = dict(zip(inspect.signature(super().__init__).parameters, args))
        params.update(kwargs)
        params["args"] = to_prune_arguments(params.get("args"))
        train_dataset = params.get("train_dataset")
        prune_args: PruneArguments = params["args"]
        if train_dataset is not None:
            check_train_dataset(train_dataset, "train_dataset")
            label_names = prune_args.label_names or []
            self._prune_label_column = resolve_label_column(train_dataset, prune_args.label_column, label_names)
            self._prune_labels = read_labels(train_dataset, self._prune_label_column)
            if train_dataset.column_names and INDEX_COLUMN in train_dataset.column_names:
                raise RecordError(
                    f"The training set already has hf_prune's private column `{INDEX_COLUMN}`; pass the original "
                    "dataset, not one taken from a PruneTrainer."
                )
            params["train_dataset"] = add_index_column(train_dataset)
        else:
            self._prune_label_column = None
            self._prune_labels = None
        self.source_dataset = train_dataset
        self._prune_recorder: Recorder | None = None
        self._prune_probe: HeadProbe | None = None
        self._prune_head: HeadInfo | None = None
        self._prune_meta: dict[str, Any] | None = None
        self._prune_epoch = 0
        self._prune_resume_counts: dict[str, Any] | None = None
        self._prune_verify_pending = True
        self._prune_checked_steps = 0
        self._prune_last_grad_norm: float | None = None
        self._prune_timing: dict[str, float] = {}
        model = params.get("model")
        if model is not None and params.get("model_init") is None:
            check_classifier(self._prune_num_labels(model))
        super().__init__(**params)
        self.data_collator = IndexCollator(self.data_collator)
        self.add_callback(_RecordCallback(self))

    # ------------------------------------------------------------------ public
    @property
    def record_dir(self) -> str:
        """Where this trainer writes its training record."""
        return self.args.record_dir or os.path.join(self.args.output_dir, "prune_record")

    @property
    def record(self) -> TrainingRecord:
        """The finished training record (raises [`RecordError`] if training has not completed)."""
        return TrainingRecord(self.record_dir)

    @property
    def prune_labels(self) -> np.ndarray | None:
        """Label of every training row (int64, in source-index order), read once from `train_dataset`; `None` if the
        trainer was made without one."""
        return self._prune_labels

    def has_record(self) -> bool:
        """Whether a complete record of this trainer's training set exists on disk."""
        try:
            record = self.record
        except RecordError:
            return False
        if self.source_dataset is None:
            return True
        try:
            record.check_dataset(self.source_dataset, self._prune_label_column)
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
        checkpoint = resume_from_checkpoint
        if checkpoint is True:
            checkpoint = last_complete_checkpoint(self.args.output_dir, self.args.process_index)
            if checkpoint is None:
                raise RecordError(
                    f"No complete checkpoint with an hf_prune record manifest in {self.args.output_dir!r}; there is "
                    "nothing to resume. Train from the start (`trainer.train()`)."
                )
        elif checkpoint and not os.path.isfile(os.path.join(checkpoint, "trainer_state.json")):
            raise RecordError(
                f"Checkpoint {checkpoint!r} is incomplete (no trainer_state.json: the save was interrupted). Resume "
                "from an earlier checkpoint, or pass `resume_from_checkpoint=True` to pick the last complete one."
            )
        # One run per record: a second run started on the same record_dir would interleave its rows with this one's.
        lock = WriterLock(self.record_dir)
        refused = None
        if self.is_world_process_zero():
            try:
                lock.acquire()
            except RecordError as err:
                refused = str(err)
        if self.args.world_size > 1:  # every process stops, not only the main one (the others would wait forever)
            from accelerate.utils import broadcast_object_list

            refused = broadcast_object_list([refused])[0]
        if refused is not None:
            raise RecordError(refused)
        try:
            if checkpoint:
                self._prune_resume_counts = read_checkpoint_manifest(checkpoint, self.args.process_index)
            else:
                self._prune_resume_counts = None
                if self.is_world_process_zero() and os.path.isdir(self.record_dir):
                    logger.warning(f"Overwriting the existing training record at {self.record_dir}.")
                    remove_record(self.record_dir)
                self.accelerator.wait_for_everyone()
            self._prune_recorder = None
            self._prune_verify_pending = True
            start = time.perf_counter()
            output = super().train(
                resume_from_checkpoint=checkpoint or None, trial=trial, ignore_keys_for_eval=ignore_keys_for_eval,
                **kwargs,
            )
            self._prune_timing["train_seconds"] = time.perf_counter() - start
            self._prune_finalize()
        finally:
            lock.release()
        return output

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
        self._prune_ensure_tracking(model)
        labels = self._prune_batch_labels(inputs)
        probe = self._prune_probe
        probe.arm()
        try:
            loss = super().training_step(model, inputs, num_items_in_batch, *args, **kwargs)
        finally:
            probe.disarm()
        if probe.logits is None:
            raise UnsupportedModelError(
                f"The head `{self._prune_head.name}` was not called during the forward pass; it is not the module that "
                "produces the logits. Set `PruneArguments(head_module=...)`."
            )
        scaler = getattr(self.accelerator, "scaler", None)
        scale = float(scaler.get_scale()) if scaler is not None and scaler.is_enabled() else 1.0
        self._prune_recorder.add_microbatch(
            index=index,
            labels=labels,
            logits=probe.logits,
            logit_grad=probe.logit_grad,
            features=probe.features,
            grad_divisor=self.args.world_size * scale,
            allow_nonfinite=scaler is not None and scaler.is_enabled(),
        )
        return loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None, **kwargs):
        # Check once, on the first recorded micro-batch, that the probed head produced the model's logits.
        if not (self._prune_verify_pending and self._prune_probe is not None and self._prune_probe.armed):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch, **kwargs)
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch, **kwargs)
        self._prune_verify_head(outputs)
        return (loss, outputs) if return_outputs else loss

    def _clip_grad_norm(self, model):
        # The clipping coefficient scales the head's update; the recursion needs it per step.
        norm = super()._clip_grad_norm(model)
        self._prune_last_grad_norm = float(norm) if norm is not None else None
        return norm

    def _save_checkpoint(self, model, trial):
        # Commit the record and write its row counts into the checkpoint before the Trainer's own files.
        if self._prune_recorder is not None:
            folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
            os.makedirs(folder, exist_ok=True)
            self._prune_recorder.write_checkpoint_manifest(folder)
        return super()._save_checkpoint(model, trial)

    # ------------------------------------------------------------------ internals
    def _prune_batch_labels(self, inputs: dict[str, Any]) -> torch.Tensor:
        for name in [*(self.label_names or []), "labels", "label"]:
            if name in inputs and isinstance(inputs[name], torch.Tensor):
                labels = inputs[name]
                if labels.dtype.is_floating_point or labels.dim() != 1:
                    raise UnsupportedModelError(
                        f"Batch labels `{name}` have dtype {labels.dtype} and shape {tuple(labels.shape)}; hf_prune "
                        "supports single-label classification (one integer class id per sample, softmax "
                        "cross-entropy). Regression and multi-label targets are not supported."
                    )
                return labels
        raise UnsupportedModelError(
            f"No label tensor in the training batch (keys: {sorted(inputs)}); hf_prune needs the class ids to reach "
            "the model as `labels`. Check the collator and `label_names`."
        )

    def _prune_num_labels(self, model) -> int | None:
        config = getattr(model, "config", None)
        return getattr(config, "num_labels", None) if config is not None else None

    def _prune_ensure_tracking(self, model) -> None:
        if self._prune_recorder is not None:
            return
        target = self.accelerator.unwrap_model(model) if hasattr(self, "accelerator") else model
        check_problem_type(target)
        num_labels = self._prune_num_labels(target)
        check_classifier(num_labels)
        head = find_head(target, self.args.head_module, num_labels)
        check_classifier(head.num_classes, f"the head `{head.name}`")
        labels = self._prune_labels
        if labels is not None and len(labels) and int(labels.max()) >= head.num_classes:
            raise UnsupportedModelError(
                f"The training set has label {int(labels.max())} but the head `{head.name}` has only "
                f"{head.num_classes} outputs. Set `num_labels` of the model to at least {int(labels.max()) + 1}."
            )
        optimizer = describe_optimizer(self.optimizer, head)
        head_state_size = 0
        if self.args.track_head_state == "auto" and optimizer["type"] in _ADAM_TYPES:
            # Second moment (or AMSGrad's running max) and first moment of the head, after each step.
            head_state_size = 2 * head.num_parameters
        self._prune_head = head
        self._prune_probe = HeadProbe(head)
        self._prune_meta = self._prune_build_meta(target, head, optimizer, head_state_size)
        if self.is_world_process_zero() and self._prune_resume_counts is None:
            os.makedirs(self.record_dir, exist_ok=True)
            write_meta(self.record_dir, self._prune_meta)
            write_array(self.record_dir, "labels", self._prune_labels.astype("<i8"))
        self._prune_recorder = Recorder(
            self.record_dir,
            rank=self.args.process_index,
            num_classes=head.num_classes,
            feature_dim=head.feature_dim,
            track_features=self.args.track_features,
            feature_dtype=self.args.feature_dtype,
            head_state_size=head_state_size,
            flush_rows=self.args.record_flush_rows,
            resume_counts=self._prune_resume_counts,
        )
        self._prune_recorder.epoch = self._prune_epoch

    def _prune_build_meta(self, model, head: HeadInfo, optimizer: dict, head_state_size: int) -> dict[str, Any]:
        args = self.args
        config = getattr(model, "config", None)
        config_hash = None
        if config is not None and hasattr(config, "to_json_string"):
            import hashlib

            config_hash = hashlib.sha1(config.to_json_string(use_diff=False).encode()).hexdigest()[:16]
        signature = dataset_signature(self.source_dataset, self._prune_label_column)
        return {
            "format_version": RECORD_FORMAT_VERSION,
            "hf_prune_version": __version__,
            "status": "running",
            "num_samples": len(self.source_dataset),
            "class_names": class_names(self.source_dataset, self._prune_label_column),
            "head": {
                "name": head.name,
                "num_classes": head.num_classes,
                "feature_dim": head.feature_dim,
                "has_bias": head.has_bias,
            },
            "track_features": bool(args.track_features),
            "feature_dtype": args.feature_dtype,
            "head_state_size": head_state_size,
            "optimizer": optimizer,
            "world_size": int(args.world_size),
            "dataset": signature,
            "model": {
                "class": type(model).__name__,
                "name_or_path": getattr(config, "_name_or_path", None) or None,
                "config_hash": config_hash,
                "num_parameters": int(sum(p.numel() for p in model.parameters())),
            },
            "training": {
                "num_train_epochs": float(args.num_train_epochs),
                "max_steps": int(args.max_steps),
                "score_epochs": args.score_epochs,
                "per_device_train_batch_size": int(args.per_device_train_batch_size),
                "gradient_accumulation_steps": int(args.gradient_accumulation_steps),
                "learning_rate": float(args.learning_rate),
                "lr_scheduler_type": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
                "weight_decay": float(args.weight_decay),
                "max_grad_norm": float(args.max_grad_norm),
                "seed": int(args.seed),
                "data_seed": args.data_seed,
                "optim": str(getattr(args.optim, "value", args.optim)),
                "fp16": bool(args.fp16),
                "bf16": bool(args.bf16),
            },
        }

    def _prune_verify_head(self, outputs: Any) -> None:
        self._prune_verify_pending = False
        logits = None
        if isinstance(outputs, dict) or hasattr(outputs, "keys"):
            logits = outputs.get("logits") if hasattr(outputs, "get") else None
        elif isinstance(outputs, (tuple, list)) and len(outputs) > 1:
            logits = outputs[1]
        captured = self._prune_probe.logits
        if logits is None or not isinstance(logits, torch.Tensor):
            logger.warning(
                "hf_prune could not find `logits` in the model's outputs to confirm that the head "
                f"`{self._prune_head.name}` produces them; the record assumes it does."
            )
            return
        if captured is None or captured.shape != logits.shape or not torch.allclose(
            captured.float(), logits.detach().float(), rtol=1e-3, atol=1e-4, equal_nan=True
        ):
            shape = None if captured is None else tuple(captured.shape)
            raise UnsupportedModelError(
                f"The module `{self._prune_head.name}` (output shape {shape}) does not produce the model's logits "
                f"(shape {tuple(logits.shape)}): the logits are transformed after it, or another layer is the head. "
                "Set `PruneArguments(head_module=...)` to the nn.Linear whose output is returned as `logits`."
            )

    def _prune_check_head_gradient(self) -> None:
        # Cheap sanity check on the first steps: the head's real gradient must be Σ_i ∂L/∂z_i ⊗ [h_i; 1].
        if self._prune_recorder is None or self._prune_checked_steps >= 3 or self.args.world_size > 1:
            return
        self._prune_checked_steps += 1
        head = self._prune_head
        expected = self._prune_recorder.pending_head_gradient(head.has_bias)
        if expected is None or head.module.weight.grad is None:
            return
        actual = head.module.weight.grad.detach().float().cpu().numpy().astype(np.float64)
        if head.has_bias and head.module.bias.grad is not None:
            actual = np.concatenate([actual, head.module.bias.grad.detach().double().cpu().numpy()[:, None]], axis=1)
        clip = self._prune_clip_coefficient()
        denom = max(np.linalg.norm(expected) * clip, 1e-12)
        error = np.linalg.norm(actual - clip * expected) / denom
        tolerance = 1e-2 if (self.args.fp16 or self.args.bf16) else 1e-3
        if error > tolerance:
            logger.warning(
                f"The head's gradient differs from the sum of per-sample head gradients by {error:.2e} (relative). "
                "The head is used more than once per forward, or an extra loss term reaches its parameters; "
                "influence estimates for this run are approximate."
            )
            self._prune_meta.setdefault("warnings", []).append(f"head gradient mismatch {error:.2e}")

    def _prune_clip_coefficient(self) -> float:
        max_norm = float(self.args.max_grad_norm or 0.0)
        norm = self._prune_last_grad_norm
        if max_norm <= 0 or norm is None or not math.isfinite(norm):
            return 1.0
        return min(1.0, max_norm / (norm + 1e-6))

    def _prune_end_step(self, step: int) -> None:
        recorder = self._prune_recorder
        if recorder is None:
            return
        head = self._prune_head
        optimizer = _unwrap_optimizer(self.optimizer)
        weight_group = _find_group(optimizer, head.module.weight)
        bias_group = _find_group(optimizer, head.module.bias) if head.has_bias else None
        lr_w = float(weight_group["lr"]) if weight_group is not None else 0.0
        lr_b = float((bias_group or weight_group)["lr"]) if weight_group is not None else 0.0
        skipped = bool(getattr(self.accelerator, "optimizer_step_was_skipped", False))
        head_state = None
        opt_step = 0
        state = optimizer.state.get(head.module.weight, {}) if weight_group is not None else {}
        if "step" in state:
            opt_step = int(state["step"].item() if torch.is_tensor(state["step"]) else state["step"])
        if "head_state" in recorder.stp:
            head_state = self._prune_head_state(optimizer, head)
        recorder.end_step(
            step=step,
            lr=(lr_w, lr_b),
            clip=self._prune_clip_coefficient(),
            skipped=skipped,
            opt_step=opt_step,
            head_state=head_state,
        )
        self._prune_last_grad_norm = None

    def _prune_head_state(self, optimizer: torch.optim.Optimizer, head: HeadInfo) -> np.ndarray:
        def moment(param: torch.nn.Parameter, keys: tuple[str, ...]) -> torch.Tensor:
            state = optimizer.state.get(param, {})
            for key in keys:
                if key in state and state[key].numel():
                    return state[key].detach().float()
            return torch.zeros_like(param, dtype=torch.float32)

        def head_layout(keys: tuple[str, ...]) -> torch.Tensor:
            value = moment(head.module.weight, keys)
            if head.has_bias:
                value = torch.cat([value, moment(head.module.bias, keys)[:, None]], dim=1)
            return value.reshape(-1)

        second = head_layout(("max_exp_avg_sq", "exp_avg_sq"))
        first = head_layout(("exp_avg",))
        return torch.cat([second, first]).cpu().numpy()

    def _prune_finalize(self) -> None:
        recorder = self._prune_recorder
        if recorder is None:
            raise RecordError(
                "Training ran no recorded step (empty epoch, or `max_steps=0`), so there is no record to prune from."
            )
        recorder.discard_pending()
        recorder.commit(complete=True)
        self.accelerator.wait_for_everyone()
        query = None
        if self.args.track_eval and self.eval_dataset is not None:
            eval_dataset = self.eval_dataset
            if isinstance(eval_dataset, dict):
                eval_dataset = next(iter(eval_dataset.values()))
            start = time.perf_counter()
            query = self.capture_head(eval_dataset)
            self._prune_timing["query_seconds"] = time.perf_counter() - start
        if self.is_world_process_zero():
            meta = dict(self._prune_meta)
            meta["timing"] = dict(self._prune_timing)
            if query is not None:
                from .tracking.storage import atomic_write_json

                descriptor = {
                    key: write_array(os.path.join(self.record_dir, "query"), key, value)
                    for key, value in query.items()
                }
                atomic_write_json(os.path.join(self.record_dir, "query", "arrays.json"), descriptor)
                meta.setdefault("auxiliary", {})["query"] = descriptor
            meta = finalize_record(self.record_dir, int(self.args.world_size), meta)
            mismatched = meta["loss_check"]["not_cross_entropy"]
            if mismatched:
                logger.warning(
                    f"{mismatched} of {meta['loss_check']['captured']} recorded samples have a logit gradient that "
                    "is not a multiple of the softmax cross-entropy residual (label smoothing, class weights or an "
                    "extra loss term); SGD-Influence uses the least-squares weight of each sample."
                )
            self._prune_meta = meta
        self.accelerator.wait_for_everyone()

    @torch.no_grad()
    def capture_head(self, dataset, with_index: bool = False) -> dict[str, np.ndarray]:
        """One forward pass over `dataset` at the current model, returning the head's features, logits and labels.

        Runs in eval mode, sharded over processes and gathered (padding duplicates dropped) like `evaluate`.

        Args:
            dataset (`datasets.Dataset`): Evaluation-style dataset (same columns/transform as used for evaluation).
            with_index (`bool`): Also return the source index (the dataset must carry the index column).

        Returns:
            `dict` with `features` `(m, d)`, `logits` `(m, C)`, `labels` `(m,)` (and `index`).
        """
        model = self.model
        if self._prune_probe is None:
            target = self.accelerator.unwrap_model(model)
            self._prune_head = find_head(target, self.args.head_module, self._prune_num_labels(target))
            self._prune_probe = HeadProbe(self._prune_head)
        probe = self._prune_probe
        was_training = model.training
        model.eval()
        dataloader = self.get_eval_dataloader(dataset)
        parts: dict[str, list[np.ndarray]] = {"features": [], "logits": [], "labels": [], "index": []}
        try:
            for inputs in dataloader:
                index = inputs.pop(INDEX_COLUMN, None)
                inputs = self._prepare_inputs(inputs)
                labels = self._prune_batch_labels(inputs)
                probe.arm()
                try:
                    model(**inputs)
                finally:
                    probe.disarm()
                gathered = self.accelerator.gather_for_metrics(
                    (probe.features.float(), probe.logits.float(), labels.to(probe.logits.device))
                    + ((index.to(probe.logits.device),) if with_index and index is not None else ())
                )
                parts["features"].append(gathered[0].cpu().numpy())
                parts["logits"].append(gathered[1].cpu().numpy())
                parts["labels"].append(gathered[2].cpu().numpy().astype(np.int64))
                if len(gathered) > 3:
                    parts["index"].append(gathered[3].cpu().numpy().astype(np.int64))
        finally:
            model.train(was_training)
        return {key: np.concatenate(value) for key, value in parts.items() if value}


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
