"""Validation of the training set and its identity (fingerprint, length, label hash)."""

from __future__ import annotations

import hashlib
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
                raise DatasetError(
                    f"Label column `{name}` has feature {feature!r}; hf_prune prunes single-label classification data "
                    "and needs integer class ids (a `ClassLabel` or an int column). Encode string labels with "
                    "`dataset.class_encode_column(...)`."
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
    """Identity of a training set: row count, fingerprint, columns and a hash of its labels."""
    signature: dict[str, Any] = {
        "num_rows": len(dataset),
        "fingerprint": getattr(dataset, "_fingerprint", None),
        "columns": list(dataset.column_names),
        "label_column": label_column,
        "label_hash": None,
    }
    if label_column is not None and label_column in dataset.column_names:
        labels = read_labels(dataset, label_column)
        signature["label_hash"] = hashlib.sha1(labels.tobytes()).hexdigest()
    info = getattr(dataset, "info", None)
    if info is not None:
        signature["builder_name"] = getattr(info, "builder_name", None)
        signature["config_name"] = getattr(info, "config_name", None)
        signature["version"] = str(getattr(info, "version", None)) if getattr(info, "version", None) else None
    return signature


def class_names(dataset: Any, label_column: str) -> list[str] | None:
    """ClassLabel names of the label column, if it is a `ClassLabel`."""
    feature = dataset.features.get(label_column)
    names = getattr(feature, "names", None)
    return list(names) if names else None
