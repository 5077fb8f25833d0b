"""`record.json` of a training run: what was trained, on which rows, with which settings.

Written when the first micro-batch is recorded (`status: "running"`) and completed by
[`finalize_record`](hf_prune.tracking.recorder.finalize_record). Readers use it to check that a record belongs to a
dataset and to know the optimizer the SGD-Influence recursion replays.
"""

from __future__ import annotations

import hashlib
from typing import Any

from torch import nn

from ..version import __version__
from .dataset import class_names, dataset_signature
from .head import HeadInfo
from .record import RECORD_FORMAT_VERSION


def _config_hash(model: nn.Module) -> str | None:
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_json_string"):
        return None
    return hashlib.sha1(config.to_json_string(use_diff=False).encode()).hexdigest()[:16]


def _training_settings(args: Any) -> dict[str, Any]:
    return {
        "num_train_epochs": float(args.num_train_epochs),
        "max_steps": int(args.max_steps),
        "score_epochs": args.score_epochs,
        "per_device_train_batch_size": int(args.per_device_train_batch_size),
        "gradient_accumulation_steps": int(args.gradient_accumulation_steps),
        "learning_rate": float(args.learning_rate),
        "lr_scheduler_type": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
        "weight_decay": float(args.weight_decay),
        "max_grad_norm": float(args.max_grad_norm),
        "dataloader_drop_last": bool(args.dataloader_drop_last),
        "seed": int(args.seed),
        "data_seed": args.data_seed,
        "optim": str(getattr(args.optim, "value", args.optim)),
        "fp16": bool(args.fp16),
        "bf16": bool(args.bf16),
    }


def training_meta(
    args: Any, model: nn.Module, head: HeadInfo, optimizer: dict[str, Any], head_state_size: int, dataset: Any,
    label_column: str,
) -> dict[str, Any]:
    """The initial `record.json` of a training run.

    Args:
        args ([`PruneArguments`]): The run's arguments.
        model (`nn.Module`): The trained model (unwrapped from any distributed wrapper).
        head ([`HeadInfo`]): Its classification head.
        optimizer (`dict`): [`describe_optimizer`](hf_prune.tracking.optimizer.describe_optimizer) of the optimizer.
        head_state_size (`int`): Floats of optimizer state recorded per step (0 when none is).
        dataset (`datasets.Dataset`): The training set as the user passed it (without the index column).
        label_column (`str`): Its label column.

    Returns:
        `dict`: the metadata, with `status: "running"`.
    """
    config = getattr(model, "config", None)
    signature = dataset_signature(dataset, label_column)
    return {
        "format_version": RECORD_FORMAT_VERSION,
        "hf_prune_version": __version__,
        "status": "running",
        "num_samples": len(dataset),
        "class_names": class_names(dataset, label_column),
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
            "config_hash": _config_hash(model),
            "num_parameters": int(sum(p.numel() for p in model.parameters())),
        },
        "training": _training_settings(args),
    }
