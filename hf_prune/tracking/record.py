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

A finished record stores in `record.json` a checksum of the committed bytes of every file it references (`checksums`,
written by `finalize_record`); [`TrainingRecord`] verifies each file once, when it is first read, so a file changed
after training raises [`RecordError`] instead of silently changing scores. Derived data (`final/`, `influence/`) goes
next to the record when the directory is writable, else to a per-record user cache ([`TrainingRecord.cache_dir`]).

An *occurrence* is one sample in one optimizer step. The occurrence table holds, per row: `index` (the row of the
caller's training set), `step`, `epoch`, `label`, `loss` (softmax cross-entropy of the recorded logits),
`weight` (the effective weight of this sample's loss in the optimised objective, after gradient-accumulation,
`num_items_in_batch` and multi-process averaging), `logits`, `logit_grad` (`∂L/∂z`, read from the real backward pass
and divided by the process count, so it is the sample's contribution to the *averaged* gradient) and `features`
(the head input).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RecordError, ScoreNotComputableError
from ..logging import get_logger
from .storage import atomic_write_json, file_checksum, open_column, read_array, read_json, write_array


logger = get_logger(__name__)


RECORD_FORMAT_VERSION = 1
RECORD_META = "record.json"
RANK_MANIFEST = "manifest.json"
CHECKPOINT_MANIFEST = "hf_prune_record_rank{rank}.json"
#: Verify checksums on read. A private switch for `scripts/bench_checksum.py`'s unverified baseline, not an option.
_VERIFY_CHECKSUMS = True


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


class _VerifiedColumns(Mapping):
    """Column name -> memory-mapped array, each column verified (`verify(name)`) the first time it is read.

    Opening every column is cheap (a memory map); hashing is not, so a score pays only for the columns it reads
    (`dual` never hashes the features).
    """

    def __init__(self, arrays: dict[str, np.ndarray], verify: Callable[[str], None]):
        self._arrays = arrays
        self._verify = verify
        self._verified: set[str] = set()

    def __getitem__(self, name: str) -> np.ndarray:
        array = self._arrays[name]
        if name not in self._verified:
            self._verify(name)
            self._verified.add(name)
        return array

    def __contains__(self, name: object) -> bool:
        return name in self._arrays  # membership must not hash the column

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)


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
        self._verified_files: set[str] = set()
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

    # ------------------------------------------------------------------ integrity
    def _verify_file(
        self, path: Path, nbytes: int, expected: str | None = None, algorithm: str | None = None
    ) -> None:
        """Hash the first `nbytes` bytes of `path` (once per instance) and compare with the checksum written at commit.

        `expected`/`algorithm` come from an auxiliary set's descriptor; otherwise the file is looked up in the
        record's `checksums` (by its path relative to the record).
        """
        key = str(path)
        if not _VERIFY_CHECKSUMS or key in self._verified_files:
            return
        self._verified_files.add(key)
        checksums = self.meta.get("checksums")
        if expected is None:
            if checksums is None:
                if not getattr(self, "_logged_unverified", False):
                    self._logged_unverified = True
                    logger.info(
                        f"The record at {str(self.path)!r} was written before hf_prune stored checksums; its columns "
                        "are read without verification."
                    )
                return
            try:
                relative = path.relative_to(self.path).as_posix()
            except ValueError:
                relative = None
            expected = checksums["files"].get(relative)
            algorithm = checksums["algorithm"]
            if expected is None:
                raise RecordError(
                    f"The record at {str(self.path)!r} has no checksum for {relative or str(path)!r}, a file it reads: "
                    "its record.json was edited after training. Re-run the tracked training (or resume it from a "
                    "checkpoint with `trainer.train(resume_from_checkpoint=True)`)."
                )
        actual = file_checksum(path, algorithm, nbytes)
        if actual != expected:
            self._verified_files.discard(key)  # still corrupted next time
            raise RecordError(
                f"Record file {str(path)!r} is corrupted: its {algorithm} checksum is {actual}, but {expected} was "
                "stored when the record was committed, so the file changed after training and the scores read from "
                "it cannot be trusted. Re-run the tracked training (or resume it from a checkpoint with "
                "`trainer.train(resume_from_checkpoint=True)`), or restore the record from a backup."
            )

    def _check_label_range(self, labels: np.ndarray, where: str) -> None:
        """Label ids index the head's outputs: one outside `[0, num_classes)` would surface as a bare IndexError."""
        if not len(labels):
            return
        low, high = int(labels.min()), int(labels.max())
        if low >= 0 and high < self.num_classes:
            return
        value = low if low < 0 else high
        raise RecordError(
            f"The record at {str(self.path)!r} holds label id {value} in {where}, outside [0, {self.num_classes}) "
            f"(the record's head has {self.num_classes} classes). The record is inconsistent with its head: it was "
            "edited after training, or trained with a label column that does not match the model's `num_labels`. "
            "Re-run the tracked training with labels in [0, num_labels)."
        )

    def _columns(self, prefix: str, schema: dict, rows: int) -> _VerifiedColumns:
        arrays = {
            name: open_column(self._table_dir, f"{prefix}_{name}", dtype, shape, rows)
            for name, (dtype, shape) in schema.items()
        }

        def verify(name: str) -> None:
            self._verify_file(self._table_dir / f"{prefix}_{name}.bin", arrays[name].nbytes)

        return _VerifiedColumns(arrays, verify)

    # ------------------------------------------------------------------ caches
    @cached_property
    def identity(self) -> str:
        """A short hash naming this record (its location and what it holds), used for its user-cache directory."""
        payload = {
            "path": str(self.path.resolve()),
            "table": self.meta.get("table"),
            "dataset": self.meta.get("dataset"),
            "checksums": self.meta.get("checksums"),
        }
        return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def user_cache_dir(self, name: str) -> Path:
        """Where `cache_dir(name)` falls back to: `<cache>/records/<identity>/<name>` under the hf_prune cache
        (`$HF_PRUNE_CACHE`, default `~/.cache/huggingface/hf_prune`, see `hf_prune.cache`); not created."""
        from ..cache import cache_root

        return cache_root() / "records" / self.identity / name

    def cache_dir(self, name: str) -> Path:
        """A writable directory for data derived from this record (score caches, the final-model pass), created.

        `<record>/<name>` when the record directory is writable, else [`user_cache_dir`] (a read-only record, e.g.
        one shared on a network drive or in a read-only mount, can still be scored).

        Args:
            name (`str`): Sub-directory name, e.g. `"influence"` or `"scores"`.

        Returns:
            `pathlib.Path`: An existing, writable directory.

        Raises:
            [`RecordError`]: Neither the record directory nor the user cache is writable.

        Example:

        ```python
        >>> TrainingRecord("out/prune_record").cache_dir("influence")
        PosixPath('out/prune_record/influence')
        ```
        """
        local = self.path / name
        if os.access(self.path, os.W_OK):
            try:
                _probe_writable(local)
                return local
            except OSError as err:
                # Permission bits can say yes while the file system says no (read-only mounts, ACLs, root squash).
                logger.info(f"The record directory is not writable ({err}); caching {name!r} in the user cache.")
        fallback = self.user_cache_dir(name)
        try:
            _probe_writable(fallback)
        except OSError as err:
            raise RecordError(
                f"Cannot cache {name!r} for the record at {str(self.path)!r}: the record directory is read-only and "
                f"the user cache {str(fallback)!r} is not writable either ({err}). Set the environment variable "
                "`HF_PRUNE_CACHE` to a writable directory, or make the record directory writable."
            ) from err
        return fallback

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
        labels = np.asarray(open_column(self.path, "labels", "<i8", (), self.num_samples))
        self._verify_file(self.path / "labels.bin", labels.nbytes)
        self._check_label_range(labels, "labels.bin")
        return labels

    # ------------------------------------------------------------------ tables
    @cached_property
    def occurrences(self) -> Mapping[str, np.ndarray]:
        """The occurrence table, column name -> memory-mapped array (rows in step order).

        Each column's checksum is verified the first time it is read; the `label` column is verified and
        range-checked here.
        """
        schema = occurrence_columns(
            self.num_classes, self.feature_dim, self.meta["feature_dtype"], self.has_features
        )
        columns = self._columns("occ", schema, self._occ_rows)
        self._check_label_range(np.asarray(columns["label"]), "the occurrence column occ_label.bin")
        return columns

    @cached_property
    def steps(self) -> Mapping[str, np.ndarray]:
        """The step table, column name -> array (one row per optimizer step), verified on first read of a column."""
        return self._columns("step", step_columns(int(self.meta.get("head_state_size", 0))), self._step_rows)

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
            table[rows[lo : lo + chunk], index[lo : lo + chunk]] = self.occurrence_quantity(quantity, sel)
        return table

    def occurrence_quantity(self, quantity: str, rows: np.ndarray) -> np.ndarray:
        """A recorded quantity at the given rows of the occurrence table (one row per presentation of a sample).

        Args:
            quantity (`str`): One of the quantities of [`epoch_table`]: `loss`, `p_true`, `correct`, `margin`,
                `prob_margin`, `el2n`, `entropy`, `max_prob`.
            rows (`np.ndarray`): Occurrence rows, e.g. from [`first_rows`].

        Returns:
            `np.ndarray`: One float64 value per row, in the order of `rows`.

        Example:

        ```python
        >>> rows, _ = record.first_rows(0)
        >>> first_epoch_accuracy = record.occurrence_quantity("correct", np.sort(rows)).mean()
        ```
        """
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
        """Arrays of an auxiliary set (`query`: eval set at the final model; `final`: train set at the final model).

        Each array is verified against its checksum (from `record.json` for sets written with the record, from the
        set's `arrays.json` for sets written later by [`write_auxiliary`]).
        """
        descriptor = self.meta.get("auxiliary", {}).get(name)
        directory = self.path / name
        from_meta = descriptor is not None
        if descriptor is None:
            for candidate in (directory, self.user_cache_dir(name)):
                if (candidate / "arrays.json").is_file():
                    directory = candidate
                    break
            else:
                return None
            descriptor = read_json(directory / "arrays.json", f"Auxiliary set {name!r}")
        arrays = {}
        for key, desc in descriptor.items():
            arrays[key] = read_array(directory, key, desc)
            if from_meta:  # written with the record: covered by record.json's checksums
                self._verify_file(directory / f"{key}.bin", arrays[key].nbytes)
            elif "checksum" in desc:
                self._verify_file(
                    directory / f"{key}.bin", arrays[key].nbytes, desc["checksum"], desc["checksum_algorithm"]
                )
            else:
                logger.info(f"Auxiliary set {name!r} was written before hf_prune stored checksums; read unverified.")
        return arrays

    def write_auxiliary(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        """Store an auxiliary set with the record (used for the final-model train pass), or in the user cache when
        the record directory is read-only (see [`cache_dir`]). Each array's checksum goes into its `arrays.json`."""
        directory = self.cache_dir(name)
        descriptor = {key: write_array(directory, key, np.asarray(value)) for key, value in arrays.items()}
        atomic_write_json(directory / "arrays.json", descriptor)

    def check_dataset(self, dataset, label_column: str | None = None) -> None:
        """Raise [`RecordError`] if `dataset` is not the training set this record was made from, in the same order.

        Compares the row count, the label hash and the sampled content hash of every column both sides have (see
        [`hf_prune.tracking.dataset.check_same_rows`]): the untokenized source of the training set passes, a
        shuffled, filtered or re-ordered copy does not.
        """
        from .dataset import check_same_rows

        check_same_rows(self.meta["dataset"], dataset, label_column, what="The record", error=RecordError)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def _probe_writable(directory: Path) -> None:
    """Create `directory` and a file in it, raising `OSError` if either fails (a real write, not permission bits)."""
    directory.mkdir(parents=True, exist_ok=True)
    handle, probe = tempfile.mkstemp(dir=directory, prefix=".hf_prune-write-probe-")
    os.close(handle)
    os.unlink(probe)


def looks_like_record(path: str | os.PathLike) -> bool:
    """Whether `path` holds an hf_prune record, finished (`record.json`) or not (a `rank-NNNNN` folder of rows)."""
    path = Path(path)
    return (path / RECORD_META).is_file() or any(
        entry.is_dir() and entry.name.startswith("rank-") and entry.name[5:].isdigit() for entry in path.iterdir())


def remove_record(path: str | os.PathLike) -> None:
    """Delete a record directory (used when a fresh training run starts in the same place)."""
    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path)
