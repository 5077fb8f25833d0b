"""The writer side of the training record: per-micro-batch capture, per-step commit, resume and multi-process merge.

[`Recorder`] holds no reference to a Trainer; [`PruneTrainer`] feeds it tensors captured by the head probe, so it
can be tested on its own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import RecordError, TrainingDivergedError
from .record import (
    CHECKPOINT_MANIFEST,
    RANK_MANIFEST,
    RECORD_META,
    occurrence_columns,
    rank_dir,
    step_columns,
)
from .storage import (
    ColumnWriter,
    atomic_write_json,
    checksum_algorithm,
    file_checksum,
    open_column,
    read_json,
    write_array,
)


def effective_weights(logits: torch.Tensor, labels: torch.Tensor, logit_grad: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Per-sample weight `w_i` of the loss in the optimised objective, from `∂L/∂z_i = w_i (softmax(z_i) − e_{y_i})`.

    For softmax cross-entropy the logit gradient of sample `i` is its residual scaled by the weight the training loop
    gave its loss (`1/B`, `1/num_items_in_batch`, divided by accumulation steps and processes, ...). The weight is the
    least-squares ratio; samples whose residual vanishes (a saturated, perfectly fitted sample) take the median weight
    of their micro-batch, which is what every standard loss normalisation gives them.

    Returns:
        `(weights, mismatched)`: the weights and the number of samples whose gradient is *not* a multiple of the
        cross-entropy residual (label smoothing, class weights or an extra loss term on the logits).
    """
    probs = torch.softmax(logits, dim=-1)
    residual = probs.clone()
    residual[torch.arange(len(labels), device=labels.device), labels] -= 1.0
    norm2 = (residual * residual).sum(dim=-1)
    dot = (logit_grad * residual).sum(dim=-1)
    valid = norm2 > 1e-12
    weights = torch.where(valid, dot / norm2.clamp_min(1e-30), torch.zeros_like(dot))
    if (~valid).any():
        fill = weights[valid].median() if valid.any() else torch.zeros((), dtype=weights.dtype, device=weights.device)
        weights = torch.where(valid, weights, fill)
    misfit = (logit_grad - weights[:, None] * residual).norm(dim=-1)
    scale = logit_grad.norm(dim=-1).clamp_min(1e-30)
    mismatched = int(((misfit > 1e-3 * scale) & (logit_grad.norm(dim=-1) > 1e-20)).sum())
    return weights, mismatched


class Recorder:
    """Appends the occurrences and steps of one process to `<record_dir>/rank-XXXXX/`.

    Args:
        record_dir (`str`): The record directory.
        rank (`int`): This process's index.
        num_classes (`int`), feature_dim (`int`): Shape of the head.
        track_features (`bool`), feature_dtype (`str`): Whether and how to store the head input.
        head_state_size (`int`): Size of the per-step head optimizer state (0: not recorded).
        flush_rows (`int`): Rows buffered in memory before an append to disk.
        resume_counts (`dict`, *optional*): Committed row counts of a checkpoint; the columns are cut back to them.
    """

    def __init__(
        self,
        record_dir: str | os.PathLike,
        rank: int,
        num_classes: int,
        feature_dim: int,
        track_features: bool,
        feature_dtype: str,
        head_state_size: int,
        flush_rows: int,
        resume_counts: dict[str, Any] | None = None,
    ):
        self.directory = rank_dir(record_dir, rank)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.rank = rank
        self.num_classes = num_classes
        self.track_features = track_features
        self.flush_rows = flush_rows
        self.occ = {
            name: ColumnWriter(self.directory, f"occ_{name}", dtype, shape)
            for name, (dtype, shape) in occurrence_columns(
                num_classes, feature_dim, feature_dtype, track_features
            ).items()
        }
        self.stp = {
            name: ColumnWriter(self.directory, f"step_{name}", dtype, shape)
            for name, (dtype, shape) in step_columns(head_state_size).items()
        }
        self.epoch = 0
        self.epochs_completed = 0
        self.mismatched = 0
        self.captured = 0
        self._pending: list[dict[str, np.ndarray]] = []
        if resume_counts is not None:
            for writer in self.occ.values():
                writer.truncate(int(resume_counts["occurrences"]))
            for writer in self.stp.values():
                writer.truncate(int(resume_counts["steps"]))
            self.epochs_completed = int(resume_counts.get("epochs_completed", 0))
            self.mismatched = int(resume_counts.get("mismatched", 0))
            self.captured = int(resume_counts.get("captured", 0))
        else:
            stale = [w.path.name for w in (*self.occ.values(), *self.stp.values()) if w.rows]
            if stale:
                raise RecordError(
                    f"The record directory {str(self.directory)!r} already holds data ({stale[0]}, ...) and this run "
                    "does not resume from a checkpoint. Use another `record_dir` or delete the old record."
                )

    # ------------------------------------------------------------------ capture
    def add_microbatch(
        self,
        index: torch.Tensor,
        labels: torch.Tensor,
        logits: torch.Tensor,
        logit_grad: torch.Tensor | None,
        features: torch.Tensor | None,
        grad_divisor: float,
        allow_nonfinite: bool = False,
    ) -> None:
        """Capture one micro-batch after its backward pass.

        Args:
            index (`torch.Tensor`): Source indices of the micro-batch's rows.
            labels (`torch.Tensor`): Their class ids.
            logits (`torch.Tensor`): Head output of the training forward pass.
            logit_grad (`torch.Tensor`, *optional*): `∂L/∂z` seen by the backward pass (`None`: no gradient reached
                the head, recorded as zeros).
            features (`torch.Tensor`, *optional*): Head input.
            grad_divisor (`float`): Divides `logit_grad` (process count × fp16 loss scale) so that it becomes the
                sample's contribution to the gradient the optimizer applies.
            allow_nonfinite (`bool`): Accept non-finite losses (fp16 overflow, the step will be skipped).
        """
        z = logits.detach().float()
        y = labels.detach().to(device=z.device, dtype=torch.long)
        if z.dim() != 2 or len(y) != len(z):
            raise RecordError(
                f"Expected logits of shape [batch, classes] matching {len(y)} labels, got {tuple(z.shape)}."
            )
        if int(y.min()) < 0 or int(y.max()) >= self.num_classes:
            bad = y[(y < 0) | (y >= self.num_classes)][:5].tolist()
            raise RecordError(
                f"Labels {bad} are outside [0, {self.num_classes}) (the head has {self.num_classes} outputs). Check "
                "`num_labels` of the model and the label column."
            )
        loss = torch.nn.functional.cross_entropy(z, y, reduction="none")
        if not torch.isfinite(loss).all() and not allow_nonfinite:
            bad_rows = index[~torch.isfinite(loss).cpu()][:5].tolist()
            raise TrainingDivergedError(
                f"Training produced non-finite losses (source indices {bad_rows}, epoch {self.epoch}); the run "
                "diverged and nothing recorded from it can be trusted. Lower the learning rate, enable gradient "
                "clipping (`max_grad_norm`) or check the inputs of those rows for NaN/inf."
            )
        if logit_grad is None:
            grad = torch.zeros_like(z)
        else:
            grad = logit_grad.detach().float() / float(grad_divisor)
        weights, mismatched = effective_weights(z, y, grad)
        self.mismatched += mismatched
        self.captured += len(y)
        row = {
            "index": index.detach().cpu().numpy().astype(np.int64),
            "label": y.cpu().numpy().astype(np.int64),
            "loss": loss.cpu().numpy(),
            "weight": weights.cpu().numpy(),
            "logits": z.cpu().numpy(),
            "logit_grad": grad.cpu().numpy(),
            "microbatch": np.full(len(y), len(self._pending), dtype=np.int32),
        }
        if self.track_features:
            if features is None:
                raise RecordError("The head probe captured no features for this micro-batch.")
            row["features"] = features.detach().float().cpu().numpy()
        self._pending.append(row)

    def pending_head_gradient(self, has_bias: bool) -> np.ndarray | None:
        """Σ_i ∂L/∂z_i ⊗ [h_i; 1] over the pending micro-batches (the head gradient they explain)."""
        if not self._pending or not self.track_features:
            return None
        grad = np.concatenate([p["logit_grad"] for p in self._pending]).astype(np.float64)
        feats = np.concatenate([p["features"] for p in self._pending]).astype(np.float64)
        if has_bias:
            feats = np.concatenate([feats, np.ones((len(feats), 1))], axis=1)
        return grad.T @ feats

    def end_step(
        self,
        step: int,
        lr: tuple[float, float],
        clip: float,
        skipped: bool,
        opt_step: int,
        head_state: np.ndarray | None,
    ) -> None:
        """Close an optimizer step: its micro-batches become occurrence rows and one step row is appended."""
        if self._pending:
            rows = {key: np.concatenate([p[key] for p in self._pending]) for key in self._pending[0]}
        else:
            rows = {}
        count = len(rows.get("index", ()))
        if count:
            rows["step"] = np.full(count, step, dtype=np.int32)
            rows["epoch"] = np.full(count, self.epoch, dtype=np.int32)
            for name, writer in self.occ.items():
                writer.append(rows[name])
        self._pending.clear()
        self.stp["step"].append(np.array([step]))
        self.stp["epoch"].append(np.array([self.epoch]))
        self.stp["lr"].append(np.array([lr], dtype=np.float64))
        self.stp["clip"].append(np.array([clip], dtype=np.float64))
        self.stp["skipped"].append(np.array([int(skipped)]))
        self.stp["rows"].append(np.array([count]))
        self.stp["opt_step"].append(np.array([opt_step]))
        if "head_state" in self.stp:
            self.stp["head_state"].append(np.asarray(head_state, dtype=np.float32)[None, :])
        if self.occ["index"].rows - self.occ["index"].flushed_rows >= self.flush_rows:
            self.commit()

    def discard_pending(self) -> None:
        self._pending.clear()

    # ------------------------------------------------------------------ persistence
    def counts(self) -> dict[str, Any]:
        return {
            "occurrences": self.occ["index"].rows,
            "steps": self.stp["step"].rows,
            "epochs_completed": self.epochs_completed,
            "epoch": self.epoch,
            "mismatched": self.mismatched,
            "captured": self.captured,
        }

    def commit(self, complete: bool = False) -> dict[str, Any]:
        """Append buffered rows to disk and atomically publish the new row counts."""
        for writer in (*self.occ.values(), *self.stp.values()):
            writer.flush()
        counts = self.counts()
        counts["complete"] = complete
        atomic_write_json(self.directory / RANK_MANIFEST, counts)
        return counts

    def write_checkpoint_manifest(self, checkpoint_dir: str | os.PathLike) -> None:
        """Commit and store this process's row counts in a Trainer checkpoint folder (used on resume), with the
        record's folder (a resume from another run's checkpoint is then named)."""
        counts = self.commit()
        counts["record_dir"] = str(Path(self.directory).parent.resolve())
        atomic_write_json(Path(checkpoint_dir) / CHECKPOINT_MANIFEST.format(rank=self.rank), counts)


def read_checkpoint_manifest(checkpoint_dir: str | os.PathLike, rank: int) -> dict[str, Any]:
    path = Path(checkpoint_dir) / CHECKPOINT_MANIFEST.format(rank=rank)
    if not path.is_file():
        raise RecordError(
            f"Checkpoint {str(checkpoint_dir)!r} has no hf_prune record manifest ({path.name}): it was not written by a "
            "PruneTrainer, or the save was interrupted before the record was committed. Resume from an earlier "
            "checkpoint or train again."
        )
    return read_json(path, "Checkpoint record manifest")


def finalize_record(record_dir: str | os.PathLike, world_size: int, meta: dict[str, Any]) -> dict[str, Any]:
    """Publish a finished record: merge the processes' tables (if several) and mark `record.json` complete.

    Called on the main process after every process has committed. Returns the final metadata.
    """
    record_dir = Path(record_dir)
    manifests = [read_json(rank_dir(record_dir, r) / RANK_MANIFEST, f"Manifest of rank {r}") for r in range(world_size)]
    schema_occ = occurrence_columns(
        meta["head"]["num_classes"], meta["head"]["feature_dim"], meta["feature_dtype"], meta["track_features"]
    )
    schema_step = step_columns(int(meta.get("head_state_size", 0)))
    if world_size == 1:
        table = {"directory": rank_dir(record_dir, 0).name, "occurrences": manifests[0]["occurrences"],
                 "steps": manifests[0]["steps"]}
    else:
        table = _merge_ranks(record_dir, manifests, schema_occ, schema_step)
    meta = dict(meta)
    meta["table"] = table
    meta["status"] = "complete"
    meta["epochs_completed"] = min(int(m["epochs_completed"]) for m in manifests)
    captured = sum(int(m.get("captured", 0)) for m in manifests)
    mismatched = sum(int(m.get("mismatched", 0)) for m in manifests)
    meta["loss_check"] = {"captured": captured, "not_cross_entropy": mismatched}
    meta["checksums"] = record_checksums(record_dir, meta, schema_occ, schema_step)
    atomic_write_json(record_dir / RECORD_META, meta)
    return meta


def record_checksums(record_dir: str | os.PathLike, meta: dict[str, Any], schema_occ: dict, schema_step: dict) -> dict:
    """Checksums of exactly the committed bytes of every file a finished record references.

    Covers the occurrence and step columns of the table the record reads (`rank-00000/` or `merged/`), `labels.bin`
    and the arrays of the auxiliary sets named in `meta` (`query/`). Computed once, by the process that finalizes, and
    verified by [`TrainingRecord`] when it opens each file, so a column changed after training is an error rather
    than silently different scores.

    Returns:
        `dict`: `{"algorithm": name, "files": {path relative to the record: hex digest}}`.
    """
    record_dir = Path(record_dir)
    algorithm = checksum_algorithm()
    table = meta["table"]
    files = {}
    for prefix, schema, rows in (("occ", schema_occ, table["occurrences"]), ("step", schema_step, table["steps"])):
        for name, (dtype, shape) in schema.items():
            relative = f"{table['directory']}/{prefix}_{name}.bin"
            files[relative] = file_checksum(record_dir / relative, algorithm, _nbytes(dtype, (int(rows), *shape)))
    files["labels.bin"] = file_checksum(
        record_dir / "labels.bin", algorithm, _nbytes("<i8", (int(meta["num_samples"]),))
    )
    for aux_name, descriptor in meta.get("auxiliary", {}).items():
        for key, desc in descriptor.items():
            relative = f"{aux_name}/{key}.bin"
            files[relative] = file_checksum(record_dir / relative, algorithm, _nbytes(desc["dtype"], desc["shape"]))
    return {"algorithm": algorithm, "files": files}


def _nbytes(dtype: str, shape) -> int:
    return int(np.prod([int(s) for s in shape], dtype=np.int64)) * np.dtype(dtype).itemsize


def _merge_ranks(record_dir: Path, manifests: list[dict], schema_occ: dict, schema_step: dict) -> dict[str, Any]:
    world_size = len(manifests)
    steps = [
        np.asarray(open_column(rank_dir(record_dir, r), "step_step", "<i4", (), manifests[r]["steps"]))
        for r in range(world_size)
    ]
    for r in range(1, world_size):
        if not np.array_equal(steps[r], steps[0]):
            raise RecordError(
                f"Processes 0 and {r} recorded different optimizer steps ({len(steps[0])} vs {len(steps[r])}); the "
                "per-process records cannot be merged."
            )
    occ_step = [
        np.asarray(open_column(rank_dir(record_dir, r), "occ_step", "<i4", (), manifests[r]["occurrences"]))
        for r in range(world_size)
    ]
    step_key = np.concatenate(occ_step)
    rank_key = np.concatenate([np.full(len(s), r, dtype=np.int64) for r, s in enumerate(occ_step)])
    pos_key = np.concatenate([np.arange(len(s), dtype=np.int64) for s in occ_step])
    order = np.lexsort((pos_key, rank_key, step_key))
    src_rank, src_pos = rank_key[order], pos_key[order]
    merged = record_dir / "merged"
    merged.mkdir(exist_ok=True)
    for name, (dtype, shape) in schema_occ.items():
        columns = [
            open_column(rank_dir(record_dir, r), f"occ_{name}", dtype, shape, manifests[r]["occurrences"])
            for r in range(world_size)
        ]
        writer = ColumnWriter(merged, f"occ_{name}", dtype, shape)
        writer.truncate(0)
        chunk = 1 << 18
        for lo in range(0, len(order), chunk):
            ranks, positions = src_rank[lo : lo + chunk], src_pos[lo : lo + chunk]
            out = np.empty((len(ranks), *shape), dtype=dtype)
            for r in range(world_size):
                mask = ranks == r
                if mask.any():
                    out[mask] = columns[r][positions[mask]]
            writer.append(out)
            writer.flush()
    rows_per_rank = [
        np.asarray(open_column(rank_dir(record_dir, r), "step_rows", "<i8", (), manifests[r]["steps"]))
        for r in range(world_size)
    ]
    for name, (dtype, shape) in schema_step.items():
        writer = ColumnWriter(merged, f"step_{name}", dtype, shape)
        writer.truncate(0)
        if name == "rows":
            writer.append(np.sum(rows_per_rank, axis=0))
        else:
            writer.append(open_column(rank_dir(record_dir, 0), f"step_{name}", dtype, shape, manifests[0]["steps"]))
        writer.flush()
    return {"directory": "merged", "occurrences": len(order), "steps": len(steps[0])}


def write_meta(record_dir: str | os.PathLike, meta: dict[str, Any]) -> None:
    atomic_write_json(Path(record_dir) / RECORD_META, meta)


def write_auxiliary_set(record_dir: str | os.PathLike, name: str, arrays: dict[str, np.ndarray],
                        meta: dict[str, Any]) -> None:
    """Write an auxiliary set (`<record_dir>/<name>/`, e.g. `query`: the eval set at the final model) before the
    record is finalized; its descriptor goes into `meta["auxiliary"]`, so the record's checksums cover it."""
    directory = Path(record_dir) / name
    descriptor = {key: write_array(directory, key, value) for key, value in arrays.items()}
    atomic_write_json(directory / "arrays.json", descriptor)
    meta.setdefault("auxiliary", {})[name] = descriptor
