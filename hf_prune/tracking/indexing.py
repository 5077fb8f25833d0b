"""The source-index column: how every recorded value is tied to its row of the caller's training set.

The index is added with `add_column` *before* the Trainer shuffles, filters or shards anything, and it travels with the
sample until the batch reaches `training_step`, where it is popped before `model(**inputs)`:

* `remove_unused_columns=True`: the Trainer keeps it because [`PruneTrainer`] adds it to the signature columns;
* `set_transform` / `with_transform`: the user's transform is wrapped so that the index passes around it;
* any data collator (default, padding, custom): [`IndexCollator`] removes the index from the features before the
  user's collator runs and attaches it to the batch afterwards, so a collator that rebuilds the batch from scratch
  cannot drop it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch


INDEX_COLUMN = "__hf_prune_index__"


class IndexPreservingTransform:
    """Wraps a `datasets` on-the-fly transform so that the index column survives it.

    A transform usually builds a new dict (e.g. `{"pixel_values": ..., "labels": ...}`), which would drop the index.
    This wrapper takes the index out, runs the user's transform on the remaining columns, and puts it back. It is a
    class (not a closure) so that it pickles into DataLoader worker processes.
    """

    def __init__(self, transform: Callable[[dict[str, Any]], dict[str, Any]]):
        self.transform = transform

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        batch = dict(batch)
        index = batch.pop(INDEX_COLUMN, None)
        out = self.transform(batch)
        if index is not None:
            out = dict(out)
            out[INDEX_COLUMN] = index
        return out


def add_index_column(dataset):
    """Return a copy of `dataset` with an int64 [`INDEX_COLUMN`] holding each row's position (`0 … n-1`).

    The caller's dataset is not modified (`add_column` returns a new `Dataset`). A custom format set by
    `set_transform`/`with_transform` is carried over with [`IndexPreservingTransform`] around the transform.
    """
    fmt = dataset.format
    indexed = dataset.add_column(INDEX_COLUMN, np.arange(len(dataset), dtype=np.int64))
    if fmt.get("type") == "custom":
        transform = fmt["format_kwargs"].get("transform")
        columns = fmt.get("columns")
        if columns is not None and INDEX_COLUMN not in columns:
            columns = [*columns, INDEX_COLUMN]
        indexed.set_transform(
            IndexPreservingTransform(transform), columns=columns, output_all_columns=fmt.get("output_all_columns", False)
        )
    elif fmt.get("type") is not None:
        columns = fmt.get("columns")
        if columns is not None and INDEX_COLUMN not in columns:
            columns = [*columns, INDEX_COLUMN]
        indexed.set_format(
            fmt["type"], columns=columns, output_all_columns=fmt.get("output_all_columns", False), **fmt["format_kwargs"]
        )
    return indexed


def _index_value(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return int(value.item())
    if isinstance(value, np.ndarray):
        return int(value.item())
    return int(value)


class IndexCollator:
    """Runs the user's data collator on features without the index, then attaches the index as an int64 tensor.

    Features without an index (evaluation batches) are passed through unchanged.
    """

    def __init__(self, data_collator: Callable[[list[Any]], Any]):
        self.data_collator = data_collator

    def __call__(self, features: list[Any]) -> Any:
        if not features or not isinstance(features[0], Mapping) or INDEX_COLUMN not in features[0]:
            return self.data_collator(features)
        indices = [_index_value(feature[INDEX_COLUMN]) for feature in features]
        stripped = [{key: value for key, value in feature.items() if key != INDEX_COLUMN} for feature in features]
        batch = self.data_collator(stripped)
        batch[INDEX_COLUMN] = torch.tensor(indices, dtype=torch.int64)
        return batch

    def __getattr__(self, name: str) -> Any:
        # Transparent for code that inspects collator attributes (e.g. `tokenizer` on DataCollatorWithPadding).
        if name == "data_collator":
            raise AttributeError(name)
        return getattr(self.data_collator, name)
