"""`PruneResult`: the outcome of one selection, and its conversion to `datasets.Dataset` objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import __version__


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
            from .errors import DatasetError

            raise DatasetError(
                f"This result selects from {self.num_samples} rows but the dataset has {len(dataset)}; pass the "
                "training set the scores were computed on."
            )
        if SOURCE_INDEX in dataset.column_names:
            from .errors import DatasetError

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
