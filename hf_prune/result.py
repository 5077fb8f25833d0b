"""`PruneResult`: the outcome of one selection, and its conversion to `datasets.Dataset` objects."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import DatasetError, ResultFormatError


SOURCE_INDEX = "source_index"
SCORE_PREFIX = "score_"


@dataclass
class PruneResult:
    """Kept rows, every computed score, and the facts needed to reproduce or publish the selection.

    Attributes:
        kept (`np.ndarray`): Sorted source indices of the kept rows.
        labels (`np.ndarray`): Label of every row of the training set `(n,)`.
        method (`str`), selector (`str`): What produced the selection.
        ratio (`float`, *optional*): Requested pruning ratio (fraction removed); `None` when `epsilon` was used.
        epsilon (`float`, *optional*): Requested parameter-shift tolerance (vector selectors).
        scores (`dict[str, np.ndarray]`): Every scalar score computed, one value per row (higher means keep).
        config (`dict`): Selection configuration and the score's and selector's options.
        buckets (`list[dict]`): Per-bucket solver outcome (status, gap, time) for bucketed selectors.
        info (`dict`): Other facts (objective values, score information, timings).
        record (`dict`): Summary of the training record (dataset signature, model, optimizer, training arguments).
        class_names (`list[str]`, *optional*): ClassLabel names of the label column.
        vectors (`np.ndarray`, *optional*): The method's per-row influence vectors (vector methods), kept so that a
            saved result can be selected again with a vector selector.
        aux (`dict`): The method's auxiliary per-row arrays (e.g. `p_mean` for `dual_beta`).
    """

    kept: np.ndarray
    labels: np.ndarray
    method: str
    selector: str
    ratio: float | None = None
    epsilon: float | None = None
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    buckets: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] | None = None
    vectors: np.ndarray | None = field(default=None, repr=False)
    aux: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    version: str = __version__

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    @property
    def num_kept(self) -> int:
        return len(self.kept)

    @property
    def num_removed(self) -> int:
        return self.num_samples - self.num_kept

    @property
    def keep_mask(self) -> np.ndarray:
        mask = np.zeros(self.num_samples, dtype=bool)
        mask[self.kept] = True
        return mask

    def counts_per_class(self) -> dict[str, dict[str, int]]:
        """Rows per class before and after pruning, keyed by class name (or id)."""
        classes, totals = np.unique(self.labels, return_counts=True)
        kept = np.bincount(self.labels[self.kept], minlength=int(classes.max()) + 1 if len(classes) else 0)
        out = {}
        for label, total in zip(classes, totals):
            name = self.class_names[label] if self.class_names and label < len(self.class_names) else str(label)
            out[name] = {"total": int(total), "kept": int(kept[label])}
        return out

    def solver_summary(self) -> dict[str, int]:
        """How many buckets ended in each solver status."""
        summary: dict[str, int] = {}
        for bucket in self.buckets:
            status = str(bucket.get("status", "unknown"))
            summary[status] = summary.get(status, 0) + 1
        return summary

    def summary(self) -> str:
        """One line: what was kept and how."""
        budget = f"ratio={self.ratio}" if self.ratio is not None else f"epsilon={self.epsilon}"
        text = (
            f"kept {self.num_kept} of {self.num_samples} rows ({budget}, method={self.method}, "
            f"selector={self.selector})"
        )
        if self.buckets:
            text += f", solver: {self.solver_summary()}"
        return text

    def __repr__(self) -> str:
        return f"PruneResult({self.summary()})"

    # ------------------------------------------------------------------ datasets
    def to_dataset(self, dataset):
        """The kept rows of `dataset` in their original order, with `source_index` and one `score_<name>` per score.

        Every original column and feature is kept as it is. An on-the-fly transform (`set_transform`) of `dataset`
        is not carried over (the result shows the stored columns); re-apply it with `set_transform` if needed.
        """
        import datasets

        if len(dataset) != self.num_samples:
            raise DatasetError(
                f"This result selects from {self.num_samples} rows but the dataset has {len(dataset)}; pass the "
                "training set the scores were computed on."
            )
        if SOURCE_INDEX in dataset.column_names:
            raise DatasetError(
                f"The dataset already has a `{SOURCE_INDEX}` column (is it the output of an earlier prune?). Rename it "
                f"first, e.g. `dataset.rename_column('{SOURCE_INDEX}', 'parent_{SOURCE_INDEX}')`."
            )
        base = dataset.with_format(None) if dataset.format.get("type") is not None else dataset
        # Add the new columns to the whole table first, then select: `select` stays a lazy indices mapping and no
        # row data is copied.
        annotated = base.add_column(
            SOURCE_INDEX, np.arange(self.num_samples, dtype=np.int64), feature=datasets.Value("int64")
        )
        for name, values in self.scores.items():
            column = f"{SCORE_PREFIX}{name}"
            if column in annotated.column_names:
                annotated = annotated.remove_columns(column)
            annotated = annotated.add_column(
                column, np.asarray(values, dtype=np.float32), feature=datasets.Value("float32")
            )
        return annotated.select(np.asarray(self.kept, dtype=np.int64))

    def scores_dataset(self, include_keep: bool = True):
        """Every row's `source_index`, `label`, all scores (and `keep` at this selection) as a `datasets.Dataset`."""
        import datasets

        label_feature = (
            datasets.ClassLabel(names=list(self.class_names)) if self.class_names else datasets.Value("int64")
        )
        columns: dict[str, Any] = {
            SOURCE_INDEX: np.arange(self.num_samples, dtype=np.int64),
            "label": np.asarray(self.labels, dtype=np.int64),
        }
        features = {SOURCE_INDEX: datasets.Value("int64"), "label": label_feature}
        for name, values in self.scores.items():
            columns[f"{SCORE_PREFIX}{name}"] = np.asarray(values, dtype=np.float32)
            features[f"{SCORE_PREFIX}{name}"] = datasets.Value("float32")
        if include_keep:
            columns["keep"] = self.keep_mask
            features["keep"] = datasets.Value("bool")
        return datasets.Dataset.from_dict(columns, features=datasets.Features(features))

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, dataset=None) -> str:
        """Write everything needed to select again (any ratio, any selector) without the model or retraining.

        The directory holds `result.json` (configuration, provenance, solver status) and NumPy arrays (`kept`,
        `labels`, every score, the vectors and auxiliary arrays), all loaded without pickle. With `dataset`, the
        training set is saved too (`dataset/`, via `save_to_disk`), so that `HFPruner.load(path).prune(ratio)`
        returns a pruned dataset on its own. The write is atomic: a temporary directory renamed at the end.

        Returns:
            `str`: the path written.
        """
        path = Path(path)
        if path.exists() and not (path / RESULT_FILE).is_file():
            raise ResultFormatError(
                f"{str(path)!r} exists and is not a saved hf_prune result; choose an empty or new directory."
            )
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        arrays = tmp / "arrays"
        arrays.mkdir(parents=True)
        files = {"kept": "kept.npy", "labels": "labels.npy"}
        np.save(arrays / "kept.npy", np.asarray(self.kept, dtype=np.int64))
        np.save(arrays / "labels.npy", np.asarray(self.labels, dtype=np.int64))
        for name, values in self.scores.items():
            files[f"score/{name}"] = f"score-{name}.npy"
            np.save(arrays / files[f"score/{name}"], np.asarray(values, dtype=np.float64))
        if self.vectors is not None:
            files["vectors"] = "vectors.npy"
            np.save(arrays / "vectors.npy", np.asarray(self.vectors, dtype=np.float32))
        for name, values in self.aux.items():
            files[f"aux/{name}"] = f"aux-{name}.npy"
            np.save(arrays / files[f"aux/{name}"], np.asarray(values))
        if dataset is not None:
            if len(dataset) != self.num_samples:
                raise DatasetError(
                    f"`dataset` has {len(dataset)} rows but this result selects from {self.num_samples}."
                )
            dataset.save_to_disk(str(tmp / "dataset"))
        payload = {
            "format_version": RESULT_FORMAT_VERSION,
            "hf_prune_version": self.version,
            "method": self.method,
            "selector": self.selector,
            "ratio": self.ratio,
            "epsilon": self.epsilon,
            "num_samples": self.num_samples,
            "config": self.config,
            "buckets": self.buckets,
            "info": self.info,
            "record": self.record,
            "class_names": self.class_names,
            "files": files,
            "has_dataset": dataset is not None,
        }
        (tmp / RESULT_FILE).write_text(json.dumps(to_jsonable(payload), indent=1, sort_keys=True))
        # Swap directories so that a crash at any point leaves either the old or the new result readable.
        backup = _backup_path(path)
        if backup.exists():
            shutil.rmtree(backup)
        if path.exists():
            os.replace(path, backup)
        os.replace(tmp, path)
        if backup.exists():
            shutil.rmtree(backup)
        return str(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PruneResult:
        """Read a result written by [`save`] (no pickle); raises [`ResultFormatError`] on anything unreadable."""
        path = Path(path)
        if not (path / RESULT_FILE).is_file() and (_backup_path(path) / RESULT_FILE).is_file():
            path = _backup_path(path)  # a save was interrupted between its two renames: the previous result
        meta_path = path / RESULT_FILE
        if not meta_path.is_file():
            raise ResultFormatError(f"No saved hf_prune result at {str(path)!r} ({RESULT_FILE} is missing).")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ResultFormatError(f"{str(meta_path)!r} is corrupted ({err}); the result cannot be read.") from err
        version = meta.get("format_version") if isinstance(meta, dict) else None
        if version != RESULT_FORMAT_VERSION:
            raise ResultFormatError(
                f"The result at {str(path)!r} has format version {version!r} (written by hf_prune "
                f"{meta.get('hf_prune_version') if isinstance(meta, dict) else '?'}); this hf_prune "
                f"({__version__}) reads version {RESULT_FORMAT_VERSION}. Re-run the selection with this version."
            )

        def array(name: str) -> np.ndarray:
            file = path / "arrays" / meta["files"][name]
            try:
                return np.load(file, allow_pickle=False)
            except (OSError, ValueError, EOFError) as err:
                raise ResultFormatError(
                    f"Array {name!r} of the saved result ({str(file)!r}) is missing, truncated or corrupted: {err}"
                ) from err

        try:
            files = meta["files"]
            result = cls(
                kept=array("kept"),
                labels=array("labels"),
                method=meta["method"],
                selector=meta["selector"],
                ratio=meta.get("ratio"),
                epsilon=meta.get("epsilon"),
                scores={key.split("/", 1)[1]: array(key) for key in files if key.startswith("score/")},
                config=meta.get("config", {}),
                buckets=meta.get("buckets", []),
                info=meta.get("info", {}),
                record=meta.get("record", {}),
                class_names=meta.get("class_names"),
                vectors=array("vectors") if "vectors" in files else None,
                aux={key.split("/", 1)[1]: array(key) for key in files if key.startswith("aux/")},
                version=meta.get("hf_prune_version", "?"),
            )
        except KeyError as err:
            raise ResultFormatError(f"The saved result at {str(path)!r} lacks the field {err}.") from err
        n = len(result.labels)
        if result.kept.ndim != 1 or (len(result.kept) and (result.kept.min() < 0 or result.kept.max() >= n)):
            raise ResultFormatError(f"The saved result at {str(path)!r} has kept rows outside [0, {n}).")
        for name, values in result.scores.items():
            if values.shape != (n,):
                raise ResultFormatError(f"Score {name!r} of the saved result has shape {values.shape}, not ({n},).")
        if result.vectors is not None and result.vectors.shape[0] != n:
            raise ResultFormatError(f"The saved vectors have {result.vectors.shape[0]} rows, not {n}.")
        return result

    @staticmethod
    def load_dataset(path: str | os.PathLike):
        """The training set saved next to a result (`save(path, dataset=...)`), or `None`."""
        directory = Path(path) / "dataset"
        if not directory.is_dir():
            return None
        import datasets

        try:
            return datasets.load_from_disk(str(directory))
        except Exception as err:  # noqa: BLE001 - any corruption of the saved dataset
            raise ResultFormatError(f"The dataset saved at {str(directory)!r} cannot be read: {err}") from err


RESULT_FILE = "result.json"


def _backup_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.previous")
RESULT_FORMAT_VERSION = 1


def to_jsonable(value: Any) -> Any:
    """Recursively convert NumPy scalars/arrays and other simple objects to JSON-serialisable values."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
