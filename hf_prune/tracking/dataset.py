"""Validation of the training set and its identity (fingerprint, length, label hash, sampled column hashes)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DatasetError


_DEFAULT_LABEL_COLUMNS = ("label", "labels")


def check_train_dataset(dataset: Any, argument: str = "train_dataset") -> None:
    """Raise [`DatasetError`] unless `dataset` is a non-empty `datasets.Dataset` (one split)."""
    import datasets

    if isinstance(dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        splits = list(dataset.keys())
        hint = "train" if "train" in splits else (splits[0] if splits else "train")
        raise DatasetError(
            f"`{argument}` is a {type(dataset).__name__} with splits {splits}; hf_prune prunes one split. "
            f"Did you mean `{argument}=dataset[{hint!r}]`?"
        )
    if isinstance(dataset, datasets.IterableDataset):
        raise DatasetError(
            f"`{argument}` is an IterableDataset; pruning needs a map-style `datasets.Dataset` with a known length "
            "(rows are identified by position). Materialise it, e.g. `Dataset.from_generator(lambda: iter(ds))`."
        )
    if not isinstance(dataset, datasets.Dataset):
        raise DatasetError(
            f"`{argument}` must be a `datasets.Dataset`, got {type(dataset).__name__}. Convert it with "
            "`datasets.Dataset.from_dict(...)`, `Dataset.from_pandas(...)` or `Dataset.from_list(...)`."
        )
    if len(dataset) == 0:
        raise DatasetError(f"`{argument}` is empty (0 rows); there is nothing to train on or prune.")


def resolve_label_column(dataset: Any, label_column: str | None, label_names: Sequence[str] | None = None) -> str:
    """The name of the label column, checked to exist and hold integer class ids."""
    candidates = [label_column] if label_column else [*_DEFAULT_LABEL_COLUMNS, *(label_names or ())]
    for name in candidates:
        if name in dataset.column_names:
            feature = dataset.features[name]
            dtype = getattr(feature, "dtype", None)
            if dtype is None or not (str(dtype).startswith("int") or str(dtype).startswith("uint")):
                fix = ("Encode string labels with `dataset.class_encode_column(...)`." if str(dtype) == "string" else
                       "Float, list or multi-label targets (regression, multi-label classification) are not "
                       "supported; integer class ids stored as floats can be cast: `dataset.cast_column(name, "
                       "datasets.ClassLabel(names=[...]))`.")
                raise DatasetError(
                    f"Label column `{name}` has feature {feature!r}; hf_prune prunes single-label classification data "
                    f"and needs integer class ids (a `ClassLabel` or an int column). {fix}"
                )
            return name
    if label_column:
        raise DatasetError(
            f"`label_column={label_column!r}` is not a column of the training set; its columns are "
            f"{dataset.column_names}."
        )
    raise DatasetError(
        f"The training set has no label column (looked for {list(candidates)}; columns are {dataset.column_names}). "
        "Name it `label`, or pass `PruneArguments(label_column=...)`."
    )


def read_labels(dataset: Any, label_column: str) -> np.ndarray:
    """The label column as int64, validated: no missing values and no negative (unlabeled) ids."""
    # Through the Arrow formatter, so that an indices mapping (select/shuffle/filter) is applied: `.data` alone would
    # read the underlying table in its original order.
    column = dataset.select_columns([label_column]).with_format("arrow")[label_column]
    if column.null_count:
        raise DatasetError(
            f"Label column `{label_column}` has {column.null_count} missing (None) values; every training row needs a "
            "class id. Drop unlabeled rows first: `dataset.filter(lambda row: row[...] is not None)`."
        )
    labels = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.int64)
    negative = np.flatnonzero(labels < 0)
    if len(negative):
        raise DatasetError(
            f"Label column `{label_column}` has {len(negative)} negative ids (e.g. rows {negative[:5].tolist()} with "
            f"label {int(labels[negative[0]])}); -1 usually means 'unlabeled'. Drop those rows before training."
        )
    return labels


def dataset_signature(dataset: Any, label_column: str | None) -> dict[str, Any]:
    """Identity of a training set: row count, fingerprint, columns, a hash of its labels and of its other columns.

    `label_hash` covers every label; `column_hashes` maps every other column to a hash of its values at
    [`sample_positions`] (at most 256 evenly spaced rows, always the first and the last), read through the Arrow
    formatter so that a `select` / `shuffle` / `filter` indices mapping is applied and a `torch` / `numpy` / transform
    format does not matter. Together they tell the same rows in the same order apart from a shuffled or filtered copy,
    even when every label is the same class. [`check_same_rows`] compares a dataset against a signature.
    """
    signature: dict[str, Any] = {
        "num_rows": len(dataset),
        "fingerprint": getattr(dataset, "_fingerprint", None),
        "columns": list(dataset.column_names),
        "label_column": label_column,
        "label_hash": None,
    }
    if label_column is not None and label_column in dataset.column_names:
        signature["label_hash"] = _label_hash(dataset, label_column)
    signature["column_hashes"] = column_hashes(dataset, exclude=(label_column,))
    # The row count the content hashes were computed on: a caller that rewrites `num_rows` (scores extrapolated from
    # a subset to the full set) leaves hashes that describe another set of rows, which `check_same_rows` then skips.
    signature["hashed_num_rows"] = len(dataset)
    info = getattr(dataset, "info", None)
    if info is not None:
        signature["builder_name"] = getattr(info, "builder_name", None)
        signature["config_name"] = getattr(info, "config_name", None)
        signature["version"] = str(getattr(info, "version", None)) if getattr(info, "version", None) else None
    return signature


SAMPLE_ROWS = 256


def sample_positions(num_rows: int, size: int = SAMPLE_ROWS) -> np.ndarray:
    """The rows whose content [`column_hashes`] hashes: `size` evenly spaced positions, always the first and last."""
    if num_rows <= size:
        return np.arange(num_rows, dtype=np.int64)
    return np.unique(np.linspace(0, num_rows - 1, size).round().astype(np.int64))


def column_hashes(dataset: Any, exclude: Sequence[str | None] = ()) -> dict[str, str]:
    """A content hash of every column (but `exclude`) over the rows at [`sample_positions`].

    The hash depends on the values only, not on how Arrow stores them (chunks, `list` / `large_list` /
    fixed-size lists, int32 or int64, float32 or float64 for equal values): a column re-read from the same source
    hashes the same. Images and audio (`{bytes, path}` structs) hash their bytes, or the file name when only a path
    is stored, so a dataset folder moved elsewhere still matches.

    Returns:
        `dict[str, str]`: column name to hex digest.
    """
    columns = [name for name in dataset.column_names if name not in set(exclude)]
    if not columns or len(dataset) == 0:
        return {}
    positions = sample_positions(len(dataset))
    # The Arrow formatter applies the indices mapping of select/shuffle/filter and ignores any torch/numpy format or
    # `set_transform`: the stored values of the rows at these positions, in this dataset's order.
    table = dataset.select_columns(columns).with_format("arrow")[positions.tolist()]
    return {name: _hash_column(table.column(name)) for name in columns}


def check_same_rows(
    expected: dict[str, Any],
    dataset: Any,
    label_column: str | None = None,
    *,
    what: str = "The result",
    error: type[Exception] = DatasetError,
) -> None:
    """Raise `error` unless `dataset` holds the rows described by the signature `expected`, in the same order.

    Compared: the row count; the label hash when `dataset` has the label column (or else a `label` or `labels`
    column: a source that kept `label` where the training set renamed it); the content hash of every column present
    both in `dataset` and in the signature (see [`dataset_signature`]). Columns present on one side only are skipped,
    so the untokenized / untransformed source of a training set (same rows, same labels, other columns) passes, while
    a shuffled, filtered or re-ordered copy fails. A dataset with neither a label column nor a column in common is
    refused: nothing in it could tell a shuffled copy from the original.

    Args:
        expected (`dict`): A signature from [`dataset_signature`] (older signatures without `column_hashes` are
            checked on the row count and labels only).
        dataset (`datasets.Dataset`): The dataset to check.
        label_column (`str`, *optional*): Its label column; default: the signature's.
        what (`str`): What the signature belongs to, as the subject of the messages (`"The record"`).
        error (`type`): The exception raised (`DatasetError`, or `RecordError` for a training record).
    """
    expected_rows = expected.get("num_rows")
    if expected_rows is not None and len(dataset) != expected_rows:
        raise error(
            f"{what} was made from a training set of {expected_rows} rows, but the dataset given has {len(dataset)}. "
            "Pass the same training set that was trained on (before any filter/select)."
        )
    if expected.get("hashed_num_rows", expected_rows) != expected_rows:
        return  # the hashes describe another set of rows (scores extrapolated from a subset): count only
    label_column = label_column or expected.get("label_column")
    expected_labels = expected.get("label_hash")
    # The untokenized source often keeps `label` where the training set renamed it `labels` (or the reverse): its
    # labels are compared under that name, so a shuffled source cannot pass on its row count alone.
    compared = label_column if label_column and label_column in dataset.column_names else next(
        (name for name in _DEFAULT_LABEL_COLUMNS if name in dataset.column_names), None)
    if expected_labels is not None and compared is not None:
        if _label_hash(dataset, compared) != expected_labels:
            raise error(
                f"The dataset's labels differ from those of the training set {what.lower()} was made from (same "
                f"length, different label column `{compared}`). The dataset was modified or re-ordered after "
                "scoring; pass the original training set, in its original order (before any shuffle/filter/map of "
                "the labels), or train again."
            )
    recorded = expected.get("column_hashes") or {}
    shared = [name for name in dataset.column_names if name in recorded and name not in (label_column, compared)]
    if not shared:
        if expected_labels is not None and compared is None and (recorded or label_column):
            raise error(
                f"{what} cannot be matched to this dataset: it has no label column (`{label_column}`, `label` or "
                f"`labels`) and no column in common with the training set ({sorted(recorded) or 'none recorded'}), "
                "so a shuffled or filtered copy could not be told apart from the original. Keep the label column in "
                "the dataset you pass (or rename yours to the training set's label name), in the original order."
            )
        return
    actual = column_hashes(dataset.select_columns(shared))
    differing = [name for name in shared if actual[name] != recorded[name]]
    if differing:
        raise error(
            f"Column(s) {differing} of the dataset differ from those of the training set {what.lower()} was made "
            f"from (same length{', same labels' if expected_labels is not None else ''}; compared on "
            f"{len(sample_positions(len(dataset)))} sampled rows). The rows were shuffled, filtered or re-ordered, "
            "or those columns were modified: pass the original training set, in its original order, before any "
            f"shuffle/filter (or drop a column you changed on purpose: `dataset.remove_columns({differing!r})`)."
        )


def _label_hash(dataset: Any, label_column: str) -> str:
    try:
        labels = read_labels(dataset, label_column)
    except (TypeError, ValueError) as err:
        if isinstance(err, DatasetError):
            raise
        raise DatasetError(
            f"Label column `{label_column}` has feature {dataset.features[label_column]!r}, not integer class ids; "
            "encode it as the training set was (`dataset.class_encode_column(...)` or `cast_column`)."
        ) from err
    return hashlib.sha1(labels.tobytes()).hexdigest()


def _hash_column(column: Any) -> str:
    import pyarrow as pa

    digest = _new_hash()
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    _feed_array(digest, array)
    return digest.hexdigest()


def _new_hash():
    try:
        import xxhash

        return xxhash.xxh3_128()
    except ImportError:  # pragma: no cover - xxhash is a dependency of `datasets`
        return hashlib.blake2b(digest_size=16)


def _feed_array(digest: Any, array: Any) -> None:
    """Feed a canonical encoding of `array`'s values (type tags, null mask, list lengths, values) to `digest`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(array, pa.ExtensionArray):  # datasets' Array2D..Array5D: lists of lists underneath
        array = array.storage
    kind = array.type
    if pa.types.is_dictionary(kind):
        array = array.dictionary_decode()
        kind = array.type
    if array.null_count:
        digest.update(b"null" + np.asarray(array.is_null()).tobytes())
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        lengths = np.asarray(pc.list_value_length(array).fill_null(0), dtype=np.int64)
        digest.update(b"list" + lengths.tobytes())
        _feed_array(digest, pc.list_flatten(array))
    elif pa.types.is_struct(kind):
        names = [kind.field(i).name for i in range(kind.num_fields)]
        children = dict(zip(names, array.flatten()))  # `flatten` applies the parent's offset and nulls
        if set(names) == {"bytes", "path"}:  # datasets.Image / datasets.Audio storage
            values = [
                data if data is not None else (os.path.basename(path).encode() if path else b"")
                for data, path in zip(children["bytes"].to_pylist(), children["path"].to_pylist())
            ]
            _feed_bytes(digest, values)
        else:
            for name in names:
                digest.update(b"field" + name.encode())
                _feed_array(digest, children[name])
    elif pa.types.is_boolean(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind):
        target = np.float64 if pa.types.is_floating(kind) else np.int64
        values = np.asarray(array.fill_null(0).to_numpy(zero_copy_only=False), dtype=target)
        digest.update(b"number" + np.ascontiguousarray(values).tobytes())
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        _feed_bytes(digest, [value.encode() if value is not None else b"" for value in array.to_pylist()])
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        _feed_bytes(digest, [value if value is not None else b"" for value in array.to_pylist()])
    else:  # dates, decimals, ...: their Python values
        digest.update(b"other" + repr(array.to_pylist()).encode())


def _feed_bytes(digest: Any, values: list[bytes]) -> None:
    digest.update(b"bytes" + np.asarray([len(value) for value in values], dtype=np.int64).tobytes())
    for value in values:
        digest.update(value)


def num_classes(dataset: Any, label_column: str, labels: np.ndarray | None = None) -> int:
    """The number of classes of `dataset`'s label column: its `ClassLabel`'s names, else the largest id plus one
    (read from `labels` when given)."""
    names = class_names(dataset, label_column)
    if names:
        return len(names)
    return int(np.max(labels if labels is not None else dataset[label_column])) + 1


def class_names(dataset: Any, label_column: str) -> list[str] | None:
    """ClassLabel names of the label column, if it is a `ClassLabel`."""
    feature = dataset.features.get(label_column)
    names = getattr(feature, "names", None)
    return list(names) if names else None
