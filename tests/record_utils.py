"""Write small synthetic training records with chosen logits, through the real Recorder and finalisation code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hf_prune.tracking.record import RECORD_FORMAT_VERSION, TrainingRecord
from hf_prune.tracking.recorder import Recorder, finalize_record, write_meta
from hf_prune.tracking.storage import write_array


def logits_for(p_true: float, label: int, num_classes: int = 2) -> np.ndarray:
    """Logits whose softmax gives probability `p_true` to `label` and splits the rest evenly."""
    rest = (1.0 - p_true) / (num_classes - 1)
    logits = np.full(num_classes, np.log(rest))
    logits[label] = np.log(p_true)
    return logits


def synthetic_meta(num_samples: int, num_classes: int, dim: int, track_features: bool = True,
                   feature_dtype: str = "float32") -> dict:
    """`record.json` of a plain-SGD, single-process synthetic record (before `finalize_record` completes it)."""
    plain_sgd = {"weight_decay": 0.0, "momentum": 0.0, "dampening": 0.0, "nesterov": False}
    return {
        "format_version": RECORD_FORMAT_VERSION,
        "status": "running",
        "num_samples": num_samples,
        "class_names": None,
        "head": {"name": "classifier", "num_classes": num_classes, "feature_dim": dim, "has_bias": True},
        "track_features": track_features,
        "feature_dtype": feature_dtype,
        "head_state_size": 0,
        "optimizer": {"type": "SGD", "head_trained": True, "weight_group": dict(plain_sgd),
                      "bias_group": dict(plain_sgd), "decoupled_weight_decay": False},
        "world_size": 1,
        "dataset": {"num_rows": num_samples, "label_column": "label", "label_hash": None},
    }


def synthetic_record(
    path: Path,
    labels: np.ndarray,
    epochs: list[list[tuple[int, np.ndarray]]],
    num_classes: int,
    features: dict[int, np.ndarray] | None = None,
    batch_size: int = 2,
) -> TrainingRecord:
    """A record whose epoch `e` presents `(source_index, logits)` pairs in the given order.

    Args:
        epochs: per epoch, the presentations in order; a source index may appear twice (padding duplicate) or be
            missing (partial epoch).
        features: optional source index -> head input (the same at every presentation).
    """
    labels = np.asarray(labels)
    dim = len(next(iter(features.values()))) if features else 1
    meta = synthetic_meta(len(labels), num_classes, dim, track_features=features is not None)
    path.mkdir(parents=True, exist_ok=True)
    write_meta(path, meta)
    write_array(path, "labels", labels.astype("<i8"))
    recorder = Recorder(path, 0, num_classes, dim, features is not None, "float32", 0, 1 << 16)
    step = 0
    for epoch, presentations in enumerate(epochs):
        recorder.epoch = epoch
        for lo in range(0, len(presentations), batch_size):
            chunk = presentations[lo : lo + batch_size]
            index = torch.tensor([i for i, _ in chunk])
            logits = torch.tensor(np.stack([z for _, z in chunk]), dtype=torch.float32)
            y = torch.tensor(labels[[i for i, _ in chunk]])
            probs = torch.softmax(logits, -1)
            grad = (probs - torch.nn.functional.one_hot(y, num_classes).float()) / len(chunk)
            feats = torch.tensor(np.stack([features[i] for i, _ in chunk]), dtype=torch.float32) if features else None
            recorder.add_microbatch(index, y, logits, grad, feats, grad_divisor=1.0)
            recorder.end_step(step, (0.1, 0.1), 1.0, False, 0, None)
            step += 1
        if len({i for i, _ in presentations}) == len(labels):
            recorder.epochs_completed = epoch + 1
    recorder.commit(complete=True)
    finalize_record(path, 1, meta)
    return TrainingRecord(path)
