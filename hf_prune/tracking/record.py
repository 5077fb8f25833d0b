"""The training record: what [`PruneTrainer`] writes and every score reads.

Layout of a record directory:

```
record.json            metadata: sizes, head, optimizer, dataset fingerprint, status (written atomically)
labels.bin             the training set's label column, int64 (n,)
rank-00000/            live per-process columns (one directory per process)
    manifest.json      committed row counts (atomic); rows past them are discarded on resume
    occ_*.bin          one row per (sample, optimizer step) occurrence, in step order
    step_*.bin         one row per optimizer step
merged/                (multi-process runs only) the ranks' occurrences merged in (step, rank, position) order
query/                 eval-set head features/logits/labels at the final model (if `track_eval`)
final/                 train-set head features/logits at the final model (computed on demand)
influence/             cached per-sample influence vectors (memory-mapped)
```

An *occurrence* is one sample in one optimizer step. The occurrence table holds, per row: `index` (the row of the
caller's training set), `step`, `epoch`, `label`, `loss` (softmax cross-entropy of the recorded logits),
`weight` (the effective weight of this sample's loss in the optimised objective, after gradient-accumulation,
`num_items_in_batch` and multi-process averaging), `logits`, `logit_grad` (`∂L/∂z`, read from the real backward pass
and divided by the process count, so it is the sample's contribution to the *averaged* gradient) and `features`
(the head input).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RecordError, ScoreNotComputableError
from .storage import atomic_write_json, open_column, read_array, read_json, write_array


RECORD_FORMAT_VERSION = 1
RECORD_META = "record.json"
RANK_MANIFEST = "manifest.json"
CHECKPOINT_MANIFEST = "hf_prune_record_rank{rank}.json"


def occurrence_columns(num_classes: int, feature_dim: int, feature_dtype: str, track_features: bool) -> dict:
    """Schema of the occurrence table: name -> (dtype, row shape)."""
    columns = {
        "index": ("<i8", ()),
        "step": ("<i4", ()),
        "epoch": ("<i4", ()),
        "microbatch": ("<i4", ()),
        "label": ("<i8", ()),
        "loss": ("<f4", ()),
        "weight": ("<f4", ()),
        "logits": ("<f4", (num_classes,)),
        "logit_grad": ("<f4", (num_classes,)),
    }
    if track_features:
        columns["features"] = ("<f2" if feature_dtype == "float16" else "<f4", (feature_dim,))
    return columns


def step_columns(head_state_size: int) -> dict:
    """Schema of the step table: name -> (dtype, row shape)."""
    columns = {
        "step": ("<i4", ()),
        "epoch": ("<i4", ()),
        "lr": ("<f8", (2,)),
        "clip": ("<f8", ()),
        "skipped": ("|u1", ()),
        "rows": ("<i8", ()),
        "opt_step": ("<i8", ()),
    }
    if head_state_size:
        columns["head_state"] = ("<f4", (head_state_size,))
    return columns


def rank_dir(record_dir: str | os.PathLike, rank: int) -> Path:
    return Path(record_dir) / f"rank-{rank:05d}"


@dataclass
class StepBatch:
    """One optimizer step as the influence sweep consumes it (all processes' samples merged)."""

    step: int
    epoch: int
    lr: np.ndarray  # (2,) learning rate of the head weight's and bias's parameter groups
    clip: float
    skipped: bool
    opt_step: int
    head_state: np.ndarray | None
    index: np.ndarray
    label: np.ndarray
    weight: np.ndarray
    logits: np.ndarray
    logit_grad: np.ndarray
    features: np.ndarray | None
    step_gradient: np.ndarray | None = None  # filled by the Adam sweep


class TrainingRecord:
    """Read-only view of a finished training record; columns are memory-mapped, so RAM stays bounded.

    Args:
        path (`str` or `os.PathLike`): The record directory (`PruneArguments.record_dir`).

    Example:

    ```python
    >>> record = TrainingRecord("out/prune_record")
    >>> record.num_samples, record.num_classes, record.epochs_completed
    (60000, 10, 5)
    >>> true_prob = record.epoch_table("p_true")   # (epochs, n), NaN where a sample was not seen
    ```
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_dir():
            raise RecordError(
                f"No training record at {str(self.path)!r}. Train with `PruneTrainer` first (the record is written to "
                "`PruneArguments.record_dir`, by default `<output_dir>/prune_record`)."
            )
        self.meta = read_json(self.path / RECORD_META, "Training record metadata (record.json)")
        version = self.meta.get("format_version")
        if version != RECORD_FORMAT_VERSION:
            raise RecordError(
                f"The record at {str(self.path)!r} has format version {version!r}; this hf_prune reads version "
                f"{RECORD_FORMAT_VERSION}. Re-run the tracked training with this version."
            )
        if self.meta.get("status") != "complete":
            raise RecordError(
                f"The record at {str(self.path)!r} is incomplete (status {self.meta.get('status')!r}): training did not "
                "finish. Resume it with `trainer.train(resume_from_checkpoint=True)` or train again."
            )
        table = self.meta["table"]
        self._table_dir = self.path / table["directory"]
        self._occ_rows = int(table["occurrences"])
        self._step_rows = int(table["steps"])
        self._check_sizes()

    def _check_sizes(self) -> None:
        """A finished record's columns hold exactly its committed rows; more means a second run wrote into them."""
        index_dtype = occurrence_columns(1, 0, "float32", False)["index"][0]
        for name, dtype, rows in (("occ_index", index_dtype, self._occ_rows),
                                  ("step_step", step_columns(0)["step"][0], self._step_rows)):
            path = self._table_dir / f"{name}.bin"
            on_disk = path.stat().st_size // np.dtype(dtype).itemsize if path.is_file() else 0
            if on_disk > rows:
                raise RecordError(
                    f"The record at {str(self.path)!r} holds more rows on disk ({on_disk} in {path.name}) than it "
                    f"committed ({rows}): another training run wrote into the same record "
                    "directory at the same time, so the rows of two runs are interleaved. Train again, one run per "
                    "`record_dir`."
                )

    # ------------------------------------------------------------------ metadata
    @property
    def num_samples(self) -> int:
        return int(self.meta["num_samples"])

    @property
    def num_classes(self) -> int:
        return int(self.meta["head"]["num_classes"])

    @property
    def feature_dim(self) -> int:
        return int(self.meta["head"]["feature_dim"])

    @property
    def has_bias(self) -> bool:
        return bool(self.meta["head"]["has_bias"])

    @property
    def head_size(self) -> int:
        return self.num_classes * (self.feature_dim + int(self.has_bias))

    @property
    def has_features(self) -> bool:
        return bool(self.meta["track_features"])

    @property
    def optimizer(self) -> dict[str, Any]:
        return dict(self.meta["optimizer"])

    @property
    def num_occurrences(self) -> int:
        return self._occ_rows

    @property
    def num_steps(self) -> int:
        return self._step_rows

    @property
    def epochs_completed(self) -> int:
        """Number of epochs the training loop finished (a partial last epoch is not counted)."""
        return int(self.meta.get("epochs_completed", 0))

    @cached_property
    def labels(self) -> np.ndarray:
        """Label of every row of the training set (from the dataset's label column), int64 `(n,)`."""
        return np.asarray(open_column(self.path, "labels", "<i8", (), self.num_samples))

    # ------------------------------------------------------------------ tables
    @cached_property
    def occurrences(self) -> dict[str, np.ndarray]:
        """The occurrence table, column name -> memory-mapped array (rows in step order)."""
        schema = occurrence_columns(
            self.num_classes, self.feature_dim, self.meta["feature_dtype"], self.has_features
        )
        return {
            name: open_column(self._table_dir, f"occ_{name}", dtype, shape, self._occ_rows)
            for name, (dtype, shape) in schema.items()
        }

    @cached_property
    def steps(self) -> dict[str, np.ndarray]:
        """The step table, column name -> array (one row per optimizer step)."""
        schema = step_columns(int(self.meta.get("head_state_size", 0)))
        return {
            name: open_column(self._table_dir, f"step_{name}", dtype, shape, self._step_rows)
            for name, (dtype, shape) in schema.items()
        }

    @cached_property
    def step_offsets(self) -> np.ndarray:
        """`offsets[k]:offsets[k+1]` are the occurrence rows of the k-th step of the step table."""
        occ_step = np.asarray(self.occurrences["step"])
        return np.searchsorted(occ_step, np.asarray(self.steps["step"]), side="left").tolist() + [self._occ_rows]

    def iter_steps(self, reverse: bool = False, steps: np.ndarray | None = None) -> Iterator[StepBatch]:
        """Yield the optimizer steps (all processes merged), oldest first or (`reverse=True`) newest first.

        Args:
            reverse (`bool`): Walk from the last step to the first (the SGD-Influence backward sweep).
            steps (`np.ndarray`, *optional*): Positions in the step table to visit (default: all).
        """
        occ = self.occurrences
        table = self.steps
        offsets = self.step_offsets
        order = np.arange(self._step_rows) if steps is None else np.asarray(steps)
        if reverse:
            order = order[::-1]
        has_state = "head_state" in table
        for k in order:
            lo, hi = offsets[k], offsets[k + 1]
            yield StepBatch(
                step=int(table["step"][k]),
                epoch=int(table["epoch"][k]),
                lr=np.asarray(table["lr"][k], dtype=np.float64),
                clip=float(table["clip"][k]),
                skipped=bool(table["skipped"][k]),
                opt_step=int(table["opt_step"][k]),
                head_state=np.asarray(table["head_state"][k], dtype=np.float64) if has_state else None,
                index=np.asarray(occ["index"][lo:hi]),
                label=np.asarray(occ["label"][lo:hi]),
                weight=np.asarray(occ["weight"][lo:hi], dtype=np.float64),
                logits=np.asarray(occ["logits"][lo:hi], dtype=np.float64),
                logit_grad=np.asarray(occ["logit_grad"][lo:hi], dtype=np.float64),
                features=np.asarray(occ["features"][lo:hi], dtype=np.float64) if self.has_features else None,
            )

    # ------------------------------------------------------------------ per-epoch views
    @cached_property
    def _first_in_epoch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows holding the first occurrence of each (epoch, sample), with their epoch and sample index.

        Multi-process padding (`even_batches`) and samplers that repeat a sample make a sample appear twice in one
        epoch; per-epoch statistics count the first presentation only, so duplicates neither shift rows nor count
        twice.
        """
        index = np.asarray(self.occurrences["index"], dtype=np.int64)
        epoch = np.asarray(self.occurrences["epoch"], dtype=np.int64)
        key = epoch * self.num_samples + index
        _, first = np.unique(key, return_index=True)
        return first, epoch[first], index[first]

    @property
    def all_epochs(self) -> np.ndarray:
        """Epoch numbers present in the record (0-based, ascending), including a partial last epoch."""
        return np.unique(np.asarray(self.steps["epoch"]))

    @cached_property
    def epochs(self) -> np.ndarray:
        """The epochs scores read: those in which every training row was presented (0-based, ascending).

        A partial epoch (training stopped by `max_steps` mid-epoch) is left out, as the reference implementations
        define their windows over completed epochs; if no epoch is complete, every recorded epoch is returned.
        """
        _, epoch, _ = self._first_in_epoch
        present, counts = np.unique(epoch, return_counts=True)
        complete = present[counts == self.num_samples]
        return complete if len(complete) else self.all_epochs

    def epoch_table(self, quantity: str, epochs: int | None = None) -> np.ndarray:
        """A per-epoch, per-sample table of a recorded quantity, `(E, n)` float64, NaN where a sample was not seen.

        Args:
            quantity (`str`): One of `loss`, `p_true` (softmax probability of the label), `correct` (1.0 if the argmax
                is the label), `margin` (logit margin: true logit minus the largest other logit), `prob_margin`,
                `el2n` (`‖softmax − onehot‖₂`), `entropy`, `max_prob`.
            epochs (`int`, *optional*): Only the first `epochs` epochs.

        Raises:
            [`ScoreNotComputableError`]: `epochs` asks for more epochs than the record holds.
        """
        first, epoch, index = self._first_in_epoch
        present = self.epochs
        if epochs is not None:
            if epochs > len(present):
                raise ScoreNotComputableError(
                    f"{epochs} epochs were requested but the record holds {len(present)} "
                    f"({self.epochs_completed} completed). Train for more epochs or ask for fewer."
                )
            present = present[:epochs]
        table = np.full((len(present), self.num_samples), np.nan, dtype=np.float64)
        row_of_epoch = {int(e): k for k, e in enumerate(present)}
        keep = np.isin(epoch, present)
        first, epoch, index = first[keep], epoch[keep], index[keep]
        rows = np.fromiter((row_of_epoch[int(e)] for e in epoch), dtype=np.int64, count=len(epoch))
        chunk = 1 << 18
        for lo in range(0, len(first), chunk):
            sel = first[lo : lo + chunk]
            table[rows[lo : lo + chunk], index[lo : lo + chunk]] = self._quantity(quantity, sel)
        return table

    def _quantity(self, quantity: str, rows: np.ndarray) -> np.ndarray:
        occ = self.occurrences
        if quantity == "loss":
            return np.asarray(occ["loss"][rows], dtype=np.float64)
        logits = np.asarray(occ["logits"][rows], dtype=np.float64)
        label = np.asarray(occ["label"][rows])
        ar = np.arange(len(rows))
        if quantity == "margin":
            true = logits[ar, label]
            other = logits.copy()
            other[ar, label] = -np.inf
            return true - other.max(axis=1)
        probs = softmax(logits)
        if quantity == "p_true":
            return probs[ar, label]
        if quantity == "correct":
            return (logits.argmax(axis=1) == label).astype(np.float64)
        if quantity == "prob_margin":
            true = probs[ar, label]
            other = probs.copy()
            other[ar, label] = -np.inf
            return true - other.max(axis=1)
        if quantity == "el2n":
            residual = probs
            residual[ar, label] -= 1.0
            return np.linalg.norm(residual, axis=1)
        if quantity == "entropy":
            return -(probs * np.log(np.clip(probs, 1e-300, None))).sum(axis=1)
        if quantity == "max_prob":
            return probs.max(axis=1)
        raise ValueError(f"Unknown quantity {quantity!r}.")

    def first_rows(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Occurrence rows of each sample's first presentation in `epoch`, and the samples' source indices."""
        first, epochs_of_rows, index = self._first_in_epoch
        sel = epochs_of_rows == int(epoch)
        return first[sel], index[sel]

    def last_seen(self, column: str, epoch: int | None = None) -> np.ndarray:
        """The value of an occurrence column at each sample's first presentation in `epoch` (default: the last epoch).

        Returns an array `(n, *row_shape)`; rows of samples not seen in that epoch are NaN.
        """
        first, epochs_of_rows, index = self._first_in_epoch
        target = int(self.epochs[-1]) if epoch is None else int(epoch)
        sel = epochs_of_rows == target
        values = np.asarray(self.occurrences[column][first[sel]], dtype=np.float64)
        out = np.full((self.num_samples, *values.shape[1:]), np.nan, dtype=np.float64)
        out[index[sel]] = values
        return out

    # ------------------------------------------------------------------ auxiliary sets
    def auxiliary(self, name: str) -> dict[str, np.ndarray] | None:
        """Arrays of an auxiliary set (`query`: eval set at the final model; `final`: train set at the final model)."""
        descriptor = self.meta.get("auxiliary", {}).get(name)
        if descriptor is None:
            directory = self.path / name
            if not (directory / "arrays.json").is_file():
                return None
            descriptor = read_json(directory / "arrays.json", f"Auxiliary set {name!r}")
        return {key: read_array(self.path / name, key, desc) for key, desc in descriptor.items()}

    def write_auxiliary(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        """Store an auxiliary set next to the record (used for the final-model train pass)."""
        directory = self.path / name
        descriptor = {key: write_array(directory, key, np.asarray(value)) for key, value in arrays.items()}
        atomic_write_json(directory / "arrays.json", descriptor)

    def check_dataset(self, dataset, label_column: str | None = None) -> None:
        """Raise [`RecordError`] if `dataset` is not the training set this record was made from."""
        from .dataset import dataset_signature

        expected = self.meta["dataset"]
        actual = dataset_signature(dataset, label_column or expected.get("label_column"))
        if actual["num_rows"] != expected["num_rows"]:
            raise RecordError(
                f"The record was made from a training set of {expected['num_rows']} rows, but the dataset given has "
                f"{actual['num_rows']}. Pass the same `train_dataset` that was trained on (before any filter/select)."
            )
        if actual["label_hash"] != expected["label_hash"]:
            raise RecordError(
                "The dataset's labels differ from those of the training set this record was made from (same length, "
                "different label column). The dataset was modified or re-ordered after scoring; pass the original "
                "training set or train again."
            )


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def remove_record(path: str | os.PathLike) -> None:
    """Delete a record directory (used when a fresh training run starts in the same place)."""
    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path)
