"""`PruneResult`: the outcome of one selection, built from score outputs, turned back into them to select again, and
converted to `datasets.Dataset` objects."""

from __future__ import annotations

import json
import os
import shutil
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import DatasetError, InvalidArgumentError, ResultFormatError
from .validation import is_int, is_number
from .version import __version__


if TYPE_CHECKING:  # pragma: no cover
    from .scores.base import ScoreOutput
    from .selection.base import SelectionOutput, Selector
    from .tracking.record import TrainingRecord

SOURCE_INDEX = "source_index"
#: What a saved result's directory holds: hf_prune's own files (the result, its arrays, the training set, the card,
#: and the pruned rows `hf-prune select` writes beside them). Saving again replaces the directory, so anything else
#: there is refused rather than deleted.
RESULT_ENTRIES = {"result.json", "arrays", "dataset", "README.md", "pruned"}
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
    def check_dataset(self, dataset, check_columns: bool = True) -> None:
        """Raise [`DatasetError`] unless `dataset` is the training set this result selects from, in the same order.

        The dataset is compared with the signature stored in the result (`record["dataset"]`): row count, label hash
        and a content hash of every other column both sides have, on up to 256 sampled rows (see
        [`hf_prune.tracking.dataset.check_same_rows`]). The untokenized / untransformed source of the training set
        (same rows and labels, other columns) passes; a shuffled, filtered or re-ordered copy does not. A result
        saved without a signature is checked on its row count only.

        Args:
            dataset (`datasets.Dataset`): The dataset the kept rows will be taken from.
            check_columns (`bool`): Also refuse a dataset that already has a column [`to_dataset`] would add
                (`source_index`, or `score_<name>` for a score of this result).
        """
        from .tracking.dataset import check_same_rows

        if len(dataset) != self.num_samples:
            raise DatasetError(
                f"This result selects from {self.num_samples} rows but the dataset has {len(dataset)}; pass the "
                "training set the scores were computed on (before any filter/select)."
            )
        signature = self.record.get("dataset") if isinstance(self.record, dict) else None
        if isinstance(signature, dict) and signature:
            check_same_rows(signature, dataset, what="This result")
        if not check_columns:
            return
        if SOURCE_INDEX in dataset.column_names:
            raise DatasetError(
                f"The dataset already has a `{SOURCE_INDEX}` column (is it the output of an earlier prune?). Rename it "
                f"first, e.g. `dataset.rename_column('{SOURCE_INDEX}', 'parent_{SOURCE_INDEX}')`."
            )
        clashes = [f"{SCORE_PREFIX}{name}" for name in self.scores if f"{SCORE_PREFIX}{name}" in dataset.column_names]
        if clashes:
            raise DatasetError(
                f"The dataset already has column(s) {clashes}, which the pruned dataset would add for this result's "
                f"scores. Rename them first, e.g. `dataset.rename_column({clashes[0]!r}, 'old_{clashes[0]}')`, or "
                f"drop them with `dataset.remove_columns({clashes!r})`."
            )

    def to_dataset(self, dataset):
        """The kept rows of `dataset` in their original order, with `source_index` and one `score_<name>` per score.

        Every original column and feature is kept as it is, and so is the format of `dataset` (`with_format("torch")`,
        `"numpy"`, ...; when it formats every column, the new columns are formatted too). An on-the-fly transform
        (`set_transform`) of `dataset` is not carried over (the result shows the stored columns); re-apply it with
        `set_transform` if needed.

        `dataset` is first checked with [`check_dataset`]: it must hold the rows this result was computed on, in the
        same order (its untokenized source is fine), and must not already have a `source_index` or `score_<name>`
        column for a score of this result: such a column is refused with [`DatasetError`], never overwritten.
        Rename or drop it first (`dataset.rename_column(...)`, `dataset.remove_columns(...)`).
        """
        import datasets

        self.check_dataset(dataset)
        base = dataset.with_format(None) if dataset.format.get("type") is not None else dataset
        # Add the new columns to the whole table first, then select: `select` stays a lazy indices mapping and no
        # row data is copied.
        annotated = base.add_column(
            SOURCE_INDEX, np.arange(self.num_samples, dtype=np.int64), feature=datasets.Value("int64")
        )
        for name, values in self.scores.items():
            annotated = annotated.add_column(
                f"{SCORE_PREFIX}{name}", np.asarray(values, dtype=np.float32), feature=datasets.Value("float32")
            )
        pruned = annotated.select(np.asarray(self.kept, dtype=np.int64))
        return restore_format(pruned, dataset)

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

    # ------------------------------------------------------------------ score outputs
    @classmethod
    def from_outputs(
        cls, kept, labels, outputs: dict[str, ScoreOutput], method: str, selector: str,
        selection: SelectionOutput | None = None, *, info: dict[str, Any] | None = None, **attributes: Any,
    ) -> PruneResult:
        """A result from the score outputs a pruner computed and the outcome of its selection.

        Args:
            kept (`np.ndarray`): Source indices of the kept rows.
            labels (`np.ndarray`): Label of every row.
            outputs (`dict[str, ScoreOutput]`): Every score computed, by name: each gives its values and its extra
                scores as `scores`; the `method`'s output gives `vectors` and `aux`.
            method (`str`), selector (`str`): What produced the selection.
            selection (`SelectionOutput`, *optional*): The selector's outcome: its per-bucket solver status becomes
                `buckets`, its information `info["selection"]`.
            info (`dict`, *optional*): The other facts of `info`.
            **attributes: The other attributes (`ratio`, `epsilon`, `config`, `record`, `class_names`).

        Returns:
            [`PruneResult`]: the result.
        """
        scores: dict[str, np.ndarray] = {}
        for name, output in outputs.items():
            scores[name] = output.values
            for extra_name, values in output.extra.items():
                scores.setdefault(extra_name, values)
        info = dict(info or {})
        if selection is not None:
            info["selection"] = selection.info
        main = outputs.get(method)
        return cls(
            kept=np.asarray(kept, dtype=np.int64), labels=labels, method=method, selector=selector, scores=scores,
            buckets=list(selection.buckets) if selection is not None else [], info=info,
            vectors=main.vectors if main is not None else None, aux=dict(main.aux) if main is not None else {},
            **attributes,
        )

    def score_outputs(self, method: str, selector: Selector) -> dict[str, ScoreOutput]:
        """This result's scores as score outputs, to select from again with `method` and `selector`.

        Only the result's own method comes back with its vectors, auxiliary arrays and information; the other scores
        are values only. A `method` the result does not hold, or a vector `selector` without saved vectors, is an
        [`InvalidArgumentError`].
        """
        from .scores.base import ScoreOutput

        if method not in self.scores:
            raise InvalidArgumentError(
                f"The saved result holds the scores {sorted(self.scores)}; `method={method!r}` was not "
                "computed when it was saved. Pick one of those, or score again from the trainer or record."
            )
        outputs = {name: ScoreOutput(values=np.asarray(values, dtype=np.float64))
                   for name, values in self.scores.items()}
        main = outputs[method]
        if self.method == method:
            main.vectors, main.aux = self.vectors, dict(self.aux)
            main.info = self.info.get("score_info", {}).get(self.method, {})
        if selector.needs == "vector" and main.vectors is None:
            raise InvalidArgumentError(
                f"Selector `{selector.name}` needs the influence vectors of `{method}`, which this saved "
                "result does not hold."
            )
        return outputs

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, dataset=None) -> str:
        """Write everything needed to select again (any ratio, any selector) without the model or retraining.

        The directory holds `result.json` (configuration, provenance, solver status, a checksum of every array file)
        and NumPy arrays (`kept`, `labels`, every score, the vectors and auxiliary arrays), all loaded without pickle
        and checked by [`load`]. With `dataset`, the
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
        # The earlier result is replaced as a whole directory: anything else in it would be deleted with it.
        others = sorted(entry.name for entry in path.iterdir() if entry.name not in RESULT_ENTRIES) \
            if path.exists() else []
        if others:
            raise ResultFormatError(
                f"{str(path)!r} holds a saved result and also {others}, which are not part of one; saving a result "
                "there replaces the whole directory and would delete them. Move them elsewhere, or save to another "
                "directory."
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
            savable(dataset).save_to_disk(str(tmp / "dataset"))
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
            # Verified by `load`: a file changed after saving (bit rot, a partial copy, a hand edit) is refused.
            "checksums": {file: file_checksum(arrays / file) for file in files.values()},
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
        """Read a result written by [`save`] (no pickle); raises [`ResultFormatError`] on anything unreadable.

        Nothing is trusted as written: `result.json` must be a JSON object with fields of the right types, every array
        file must be a plain file name inside `<path>/arrays` whose checksum matches the one saved, and the arrays must
        have the saved shapes and dtypes (`kept`: sorted unique row indices in range; `labels`: non-negative ints;
        scores: one float per row; vectors: a float matrix with one row per sample; auxiliary arrays: one entry per
        row). Results saved before checksums existed load without that check.
        """
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
        if not isinstance(meta, dict):
            raise ResultFormatError(
                f"{str(meta_path)!r} holds a JSON {type(meta).__name__}, not the object hf_prune writes; the file was "
                f"modified or replaced. {_REDO}"
            )
        version = meta.get("format_version")
        if version != RESULT_FORMAT_VERSION:
            raise ResultFormatError(
                f"The result at {str(path)!r} has format version {version!r} (written by hf_prune "
                f"{meta.get('hf_prune_version', '?')}); this hf_prune ({__version__}) reads version "
                f"{RESULT_FORMAT_VERSION}. Re-run the selection with this version."
            )
        for key in ("files", "method", "selector"):
            if key not in meta:
                raise ResultFormatError(f"The saved result at {str(path)!r} lacks the field {key!r}. {_REDO}")
        _check_meta_types(meta, meta_path)
        files = meta["files"]
        for key in ("kept", "labels"):
            if key not in files:
                raise ResultFormatError(f"The saved result at {str(path)!r} lists no {key!r} array in `files`. {_REDO}")
        arrays_dir = path / "arrays"
        checksums = meta.get("checksums") or {}

        def array(name: str) -> np.ndarray:
            file = _array_file(arrays_dir, name, files[name], meta_path)
            try:
                values = np.load(file, allow_pickle=False)
            except (OSError, ValueError, EOFError) as err:
                raise ResultFormatError(
                    f"Array {name!r} of the saved result ({str(file)!r}) is missing, truncated or corrupted: {err}"
                ) from err
            # A file that still parses may hold other values (a flipped byte, a hand edit): compare its checksum.
            expected = checksums.get(files[name])
            actual = file_checksum(file, expected) if expected is not None else None
            if actual is not None and actual != expected:
                raise ResultFormatError(
                    f"Array {name!r} of the saved result ({str(file)!r}) does not match the checksum saved with it "
                    f"({expected}): the file was modified or damaged after saving. {_REDO}"
                )
            return values

        result = cls(
            kept=array("kept"),
            labels=array("labels"),
            method=meta["method"],
            selector=meta["selector"],
            ratio=meta.get("ratio"),
            epsilon=meta.get("epsilon"),
            scores={key.split("/", 1)[1]: array(key) for key in files if key.startswith("score/")},
            config=meta.get("config") or {},
            buckets=meta.get("buckets") or [],
            info=meta.get("info") or {},
            record=meta.get("record") or {},
            class_names=meta.get("class_names"),
            vectors=array("vectors") if "vectors" in files else None,
            aux={key.split("/", 1)[1]: array(key) for key in files if key.startswith("aux/")},
            version=meta.get("hf_prune_version", "?"),
        )
        _check_arrays(result, path, meta.get("num_samples"))
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


def restore_format(pruned, source):
    """`pruned` (rows and new columns of `source`, unformatted) in `source`'s format: the type, its options and
    `output_all_columns`. When `source` formats every one of its columns, so does the result (the new columns
    included); when it formats some, the same ones. A `set_transform` function (type `"custom"`) is not re-applied."""
    fmt = source.format
    if fmt.get("type") in (None, "custom"):
        return pruned
    return pruned.with_format(fmt["type"], columns=formatted_columns(source),
                              output_all_columns=fmt.get("output_all_columns", False), **(fmt.get("format_kwargs") or {}))


def formatted_columns(dataset) -> list[str] | None:
    """The columns `dataset`'s format covers, `None` when it covers them all (so columns added later are too)."""
    columns = dataset.format.get("columns")
    return None if columns is None or set(columns) >= set(dataset.column_names) else list(columns)


def savable(dataset):
    """`dataset` in a format `save_to_disk` can store: a `set_transform` function (format type `"custom"`) is dropped
    (the stored columns are written), and format options that are not JSON (e.g. `dtype=torch.float32`) are dropped
    while the format type and its columns stay. The rows are the same either way."""
    fmt = dataset.format
    if fmt.get("type") == "custom":
        return dataset.with_format(None)
    try:
        json.dumps(fmt.get("format_kwargs") or {})
    except (TypeError, ValueError):
        return dataset.with_format(fmt["type"], columns=formatted_columns(dataset),
                                   output_all_columns=fmt.get("output_all_columns", False))
    return dataset


def _backup_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.previous")


_REDO = "Re-run the selection (`HFPruner.load(...)` from the scores, or score again) and save it again."


def file_checksum(path: str | os.PathLike, like: str | None = None) -> str | None:
    """Checksum of a file's bytes as `"<algorithm>:<hex>"`: xxh3-64 (installed with `datasets`), else CRC-32.

    With `like` (a checksum read back), the same algorithm as `like` is used; `None` if it is not available here.
    """
    algorithm = like.split(":", 1)[0] if like else None
    try:
        import xxhash
    except ImportError:  # pragma: no cover - xxhash is a dependency of `datasets`
        xxhash = None
    if algorithm == "xxh3_64" or (algorithm is None and xxhash is not None):
        return f"xxh3_64:{xxhash.xxh3_64_hexdigest(Path(path).read_bytes())}" if xxhash is not None else None
    return f"crc32:{zlib.crc32(Path(path).read_bytes()) & 0xFFFFFFFF:08x}"


def _array_file(arrays_dir: Path, name: str, entry: Any, meta_path: Path) -> Path:
    """The file of array `name`, refused unless `entry` is a plain file name inside `arrays_dir`."""
    bad = (
        not isinstance(entry, str)
        or not entry
        or entry in (".", "..")
        or "/" in entry
        or "\\" in entry
        or "\x00" in entry
        or os.path.isabs(entry)
    )
    if not bad:
        file = arrays_dir / entry
        # A symlink (or anything else) resolving outside the folder is refused as well.
        bad = file.resolve().parent != arrays_dir.resolve()
    if bad:
        raise ResultFormatError(
            f"`files[{name!r}]` in {str(meta_path)!r} is {entry!r}; each entry must be the name of a file inside "
            f"{str(arrays_dir)!r} (no path separators, '..' or links leading elsewhere): the file was modified. "
            f"{_REDO}"
        )
    return file


def _check_meta_types(meta: dict[str, Any], meta_path: Path) -> None:
    """Refuse fields of `result.json` whose type is not the one `save` writes."""

    def refuse(key: str, expected: str) -> None:
        raise ResultFormatError(
            f"Field {key!r} of {str(meta_path)!r} is {meta[key]!r} ({type(meta[key]).__name__}); expected {expected}. "
            f"The file was modified. {_REDO}"
        )

    def is_finite_number(value: Any) -> bool:
        return is_number(value) and np.isfinite(value)

    files = meta["files"]
    if not isinstance(files, dict) or not all(isinstance(key, str) for key in files):
        refuse("files", "an object mapping array names to file names")
    for key in ("method", "selector"):
        if not isinstance(meta[key], str) or not meta[key]:
            refuse(key, "a non-empty string")
    if meta.get("ratio") is not None and not (is_finite_number(meta["ratio"]) and 0 < meta["ratio"] < 1):
        refuse("ratio", "null or a number in (0, 1)")
    if meta.get("epsilon") is not None and not (is_finite_number(meta["epsilon"]) and meta["epsilon"] >= 0):
        refuse("epsilon", "null or a non-negative number")
    if meta.get("num_samples") is not None and (
        not is_int(meta["num_samples"], numpy=False)
    ):
        refuse("num_samples", "an integer")
    for key, kind, label in (("config", dict, "an object"), ("info", dict, "an object"),
                             ("record", dict, "an object"), ("buckets", list, "a list"),
                             ("checksums", dict, "an object")):
        if meta.get(key) is not None and not isinstance(meta[key], kind):
            refuse(key, label)
    if meta.get("checksums") and not all(isinstance(value, str) for value in meta["checksums"].values()):
        refuse("checksums", "an object mapping file names to checksum strings")
    names = meta.get("class_names")
    if names is not None and not (isinstance(names, list) and all(isinstance(name, str) for name in names)):
        refuse("class_names", "null or a list of strings")


def _check_arrays(result: PruneResult, path: Path, num_samples: Any) -> None:
    """Refuse arrays whose dtype, shape or values cannot come from `save`."""

    def refuse(what: str) -> None:
        raise ResultFormatError(f"The saved result at {str(path)!r} is inconsistent: {what}; the files were modified "
                                f"after saving. {_REDO}")

    labels, kept = result.labels, result.kept
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        refuse(f"`labels` must be a 1-D integer array, got dtype {labels.dtype} and shape {labels.shape}")
    n = len(labels)
    if n and labels.min() < 0:
        refuse(f"`labels` holds negative class ids (e.g. {int(labels.min())})")
    if result.class_names and n and labels.max() >= len(result.class_names):
        refuse(f"`labels` holds class id {int(labels.max())} but there are {len(result.class_names)} class names")
    if num_samples is not None and num_samples != n:
        refuse(f"`num_samples` is {num_samples} but `labels` has {n} rows")
    if kept.ndim != 1 or not np.issubdtype(kept.dtype, np.integer):
        refuse(f"`kept` must be a 1-D integer array of row indices, got dtype {kept.dtype} and shape {kept.shape}")
    if len(kept) and (kept.min() < 0 or kept.max() >= n):
        refuse(f"`kept` has rows outside [0, {n}) (min {int(kept.min())}, max {int(kept.max())})")
    steps = np.diff(kept)
    if (steps == 0).any():
        refuse(f"`kept` lists row {int(kept[np.flatnonzero(steps == 0)[0]])} more than once")
    if (steps < 0).any():
        first = int(np.flatnonzero(steps < 0)[0])
        refuse(f"`kept` is not sorted (row {int(kept[first])} before row {int(kept[first + 1])})")
    for name, values in result.scores.items():
        if values.shape != (n,) or not np.issubdtype(values.dtype, np.floating):
            refuse(f"score {name!r} must be a float array of shape ({n},), got dtype {values.dtype} and shape "
                   f"{values.shape}")
    vectors = result.vectors
    if vectors is not None and (
        vectors.ndim != 2 or vectors.shape[0] != n or not np.issubdtype(vectors.dtype, np.floating)
    ):
        refuse(f"the influence vectors must be a float matrix with {n} rows, got dtype {vectors.dtype} and shape "
               f"{vectors.shape}")
    for name, values in result.aux.items():
        if values.ndim < 1 or values.shape[0] != n or values.dtype.kind not in "biuf":
            refuse(f"auxiliary array {name!r} must be numeric with {n} rows, got dtype {values.dtype} and shape "
                   f"{values.shape}")
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


def record_summary(record: TrainingRecord, dataset=None, extrapolated: bool = False) -> tuple[dict, list[str] | None]:
    """What a result says about the run its scores came from: the record's dataset signature, model, optimizer,
    training arguments and head, and the class names (from the record, else from `dataset`'s label column).

    With `extrapolated`, `record` is the seed subset's and the rows pruned are the whole `dataset`'s: the dataset
    signature is `dataset`'s, noted as extrapolated.
    """
    from .tracking.dataset import class_names, dataset_signature

    label_column = record.meta["dataset"].get("label_column")
    names = record.meta.get("class_names")
    if names is None and label_column:
        names = class_names(dataset, label_column)
    summary = {key: record.meta.get(key) for key in ("dataset", "model", "optimizer", "training", "head")}
    if record.meta.get("checkpoints"):  # `HFPruner.from_checkpoints`: forward passes, no training run
        summary["checkpoints"] = record.meta["checkpoints"]
    if extrapolated:
        summary["dataset"] = dataset_signature(dataset, label_column) | {
            "note": "scores extrapolated from a seed subset"}
    return summary, names
