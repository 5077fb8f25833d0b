"""Buckets: a seeded, class-stratified partition of the rows, with exact per-bucket (and per-class) budgets.

The TPAMI method solves the selection "bucket by bucket": independent subproblems of a few thousand rows that can run
in parallel. Stratifying by class makes every bucket resemble the whole; the budgets are split by largest-remainder
rounding so that the global number of kept rows (and, with proportional quotas, every class's count) is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..validation import check_int
from .base import allocate


@dataclass
class Group:
    """One independent subproblem: rows to choose from and how many to keep, with per-class bounds on kept rows."""

    bucket: int
    rows: np.ndarray
    keep: int
    #: class id -> (min kept, max kept) inside this group
    bounds: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: label of the class when the group is one class of a bucket (proportional quotas), else None
    label: int | None = None


def make_buckets(labels: np.ndarray, bucket_size: int, seed: int) -> list[np.ndarray]:
    """Partition the rows into `ceil(n / bucket_size)` buckets, dealing each class's shuffled rows round-robin."""
    check_int("bucket_size", bucket_size, minimum=2)
    n = len(labels)
    count = max(1, math.ceil(n / bucket_size))
    rng = np.random.default_rng(seed)
    members: list[list[np.ndarray]] = [[] for _ in range(count)]
    offset = 0
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        # Continue the deal where the previous class stopped so bucket sizes differ by at most one.
        slots = (np.arange(len(rows)) + offset) % count
        for b in range(count):
            members[b].append(rows[slots == b])
        offset = (offset + len(rows)) % count
    return [np.sort(np.concatenate(parts)) for parts in members]


def plan_groups(
    labels: np.ndarray,
    buckets: list[np.ndarray],
    n_keep: int,
    proportional: bool,
    min_per_class: int,
    class_keep: np.ndarray | None = None,
) -> list[Group]:
    """Split the global budget into per-bucket (and per-class) subproblems with exact totals. `class_keep` (one
    count per class, in sorted class order): the classes' counts, planned by the caller (implies per-class groups)."""
    classes, class_sizes = np.unique(labels, return_counts=True)
    counts = np.array([[int((labels[b] == c).sum()) for c in classes] for b in buckets])  # (B, C)
    floors = np.minimum(np.full(len(classes), min_per_class), class_sizes)
    groups: list[Group] = []
    if proportional or class_keep is not None:
        if class_keep is None:
            class_keep = allocate(class_sizes, n_keep, floors)
        per_bucket = np.stack(
            [allocate(counts[:, j], int(class_keep[j])) for j in range(len(classes))], axis=1
        )  # (B, C)
        for b, rows in enumerate(buckets):
            for j, label in enumerate(classes):
                members = rows[labels[rows] == label]
                if len(members):
                    keep = int(per_bucket[b, j])
                    groups.append(Group(b, members, keep, {int(label): (keep, keep)}, int(label)))
        return groups
    bucket_keep = allocate(counts.sum(axis=1), n_keep)
    bucket_floor = np.stack([allocate(counts[:, j], int(floors[j])) for j in range(len(classes))], axis=1)
    for b, rows in enumerate(buckets):
        bounds = {
            int(label): (int(min(bucket_floor[b, j], bucket_keep[b])), int(counts[b, j]))
            for j, label in enumerate(classes)
            if counts[b, j]
        }
        groups.append(Group(b, rows, int(bucket_keep[b]), bounds))
    return groups
