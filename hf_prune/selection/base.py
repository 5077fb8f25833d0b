"""Selector plugins: the registry, the budget, and the output contract every selector obeys.

A selector turns per-row scores (or per-row influence vectors) into the set of rows to **keep**. The budget is given
as a pruning ratio: `ratio` is the fraction *removed*, and exactly `n − round(ratio · n)` rows are kept (rounded half
up). Vector selectors also accept a parameter-shift tolerance `epsilon` instead of a ratio.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..defaults import DEFAULT_METHOD, DEFAULT_SELECTOR
from ..errors import InvalidArgumentError, SelectionError
from ..logging import get_logger
from ..registry import Registry
from ..validation import check_int, is_number


logger = get_logger(__name__)


@dataclass
class SelectionInputs:
    """What a selector may read.

    Attributes:
        labels (`np.ndarray`): Class id of every row `(n,)`.
        scores (`np.ndarray`, *optional*): The method's scalar score `(n,)`, higher means keep.
        vectors (`np.ndarray`, *optional*): Per-row vectors `(n, k)` (influence methods).
        aux (`dict`): Extra per-row arrays produced by the score (its `provides_aux`, e.g. `p_mean` for `dual_beta`).
        seed (`int`): Seed of every random choice.
        class_quota (`str`, *optional*): `"none"` or `"proportional"`; `None` lets the selector use its default.
        min_per_class (`int`): Floor on the number of kept rows of every class.
        allow_empty_classes (`bool`): Accept a selection that keeps no row of some class.
        num_classes (`int`, *optional*): Number of classes (default: `labels.max() + 1`).
        dataset (`datasets.Dataset`, *optional*): The training set, for selectors that read a column (e.g. a cost).
        aux_info (`dict`): What the score measured about the run (e.g. the `dual` score's `self_check`), reported
            with the selection.
    """

    labels: np.ndarray
    scores: np.ndarray | None = None
    vectors: np.ndarray | None = None
    aux: dict[str, np.ndarray] = field(default_factory=dict)
    seed: int = 0
    class_quota: str | None = None
    min_per_class: int = 0
    allow_empty_classes: bool = False
    num_classes: int | None = None
    dataset: Any = None
    aux_info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    @property
    def class_count(self) -> int:
        """`num_classes`, or `labels.max() + 1` when it was not given."""
        return self.num_classes or int(self.labels.max()) + 1

    def classes(self) -> np.ndarray:
        return np.unique(self.labels)


@dataclass
class Budget:
    """How much to prune: `n_keep` rows (from a ratio), or a parameter-shift tolerance `epsilon` (vector selectors)."""

    n_keep: int | None = None
    epsilon: float | None = None
    ratio: float | None = None


@dataclass
class SelectionOutput:
    """Kept rows (sorted source indices) plus per-bucket solver facts and other JSON-serialisable information."""

    kept: np.ndarray
    buckets: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def keep_count(ratio: float, n: int) -> int:
    """Rows kept at pruning ratio `ratio` (fraction removed): `n − round(ratio · n)`, rounded half up.

    The product is exact: the ratio is read as the shortest decimal that round-trips (`repr`, what the user typed),
    so `keep_count(0.7, 45)` is 45 − round(31.5) = 13, where binary floats give 0.7·45 = 31.4999… and keep 14.
    """
    from decimal import ROUND_HALF_UP, Decimal

    removed = (Decimal(repr(float(ratio))) * int(n)).to_integral_value(rounding=ROUND_HALF_UP)
    return int(n) - int(removed)


def check_ratio(ratio: Any, n: int) -> float:
    """Validate a pruning ratio (the fraction of rows *removed*) for a dataset of `n` rows."""
    if not is_number(ratio, numpy=True):
        raise InvalidArgumentError(
            f"`ratio` is the fraction of rows to remove, a float in (0, 1); got {ratio!r} ({type(ratio).__name__})."
        )
    ratio = float(ratio)
    if not (0.0 < ratio < 1.0) or math.isnan(ratio):
        raise InvalidArgumentError(
            f"`ratio` is the fraction of rows to remove and must be in (0, 1), got {ratio}. "
            "For example `prune(0.4)` removes 40 % of the rows and keeps 60 %."
        )
    if keep_count(ratio, n) < 1:
        raise InvalidArgumentError(
            f"`ratio={ratio}` removes round({ratio}·{n}) = {n} of {n} rows and leaves none. Use a smaller ratio "
            f"(at most {(n - 1) / n:.4f} for this dataset)."
        )
    if keep_count(ratio, n) == n:
        fix = f"`ratio={1 / n:.3g}` removes one row of this dataset" if n > 1 else "a 1-row set cannot be pruned"
        logger.warning(
            f"hf_prune: `ratio={ratio}` removes round({ratio}·{n}) = 0 of {n} rows: the subset is the whole training "
            f"set ({fix})."
        )
    return ratio


def allocate(
    sizes: np.ndarray,
    total: int,
    floors: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Split an integer `total` over groups proportionally to `weights` (default: `sizes`), exactly.

    Largest-remainder rounding, each group gets at least `floors[g]` and at most `sizes[g]`. Raises
    [`SelectionError`] if the floors exceed the total or the total exceeds the capacity.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    floors = np.zeros_like(sizes) if floors is None else np.minimum(np.asarray(floors, dtype=np.int64), sizes)
    if total > sizes.sum():
        raise SelectionError(f"Cannot keep {total} rows from groups holding {int(sizes.sum())}.")
    if floors.sum() > total:
        raise SelectionError(f"Per-group floors sum to {int(floors.sum())}, more than the {total} rows kept.")
    weights = sizes.astype(np.float64) if weights is None else np.asarray(weights, dtype=np.float64)
    alloc = floors.copy()
    remaining = total - int(alloc.sum())
    # Water-filling: distribute proportionally among groups with spare capacity until the total is reached.
    while remaining > 0:
        spare = sizes - alloc
        active = (spare > 0) & (weights > 0)
        if not active.any():
            active = spare > 0
            weights = np.where(active, 1.0, 0.0)
        share = np.zeros(len(sizes))
        share[active] = remaining * weights[active] / weights[active].sum()
        add = np.minimum(np.floor(share).astype(np.int64), spare)
        left = remaining - int(add.sum())
        if left > 0:
            fraction = np.where(active & (add < spare), share - np.floor(share), -1.0)
            order = np.argsort(-fraction, kind="stable")
            for g in order[:left]:
                if fraction[g] < 0:
                    break
                add[g] += 1
        if add.sum() == 0:
            g = int(np.flatnonzero(active)[0])
            add[g] = 1
        alloc += add
        remaining = total - int(alloc.sum())
    return alloc


def class_targets(inputs: SelectionInputs, n_keep: int, proportional: bool) -> dict[int, int] | None:
    """Per-class keep counts for a proportional quota (with floors), or `None` for no quota."""
    if not proportional and inputs.min_per_class <= 0:
        return None
    classes, sizes = np.unique(inputs.labels, return_counts=True)
    floors = np.full(len(classes), inputs.min_per_class)
    if np.minimum(floors, sizes).sum() > n_keep:
        raise SelectionError(
            f"`min_per_class={inputs.min_per_class}` over {len(classes)} classes needs "
            f"{int(np.minimum(floors, sizes).sum())} rows, more than the {n_keep} kept. Lower it or prune less."
        )
    if proportional:
        alloc = allocate(sizes, n_keep, floors)
        return {int(c): int(a) for c, a in zip(classes, alloc)}
    return {int(c): int(min(f, s)) for c, f, s in zip(classes, floors, sizes)}


def tie_break_order(values: np.ndarray, seed: int, descending: bool = True) -> np.ndarray:
    """Indices sorted by `values` (descending by default) with ties broken by a seeded random permutation."""
    rng = np.random.default_rng(seed)
    noise = rng.permutation(len(values))
    primary = -values if descending else values
    return np.lexsort((noise, primary))


class Selector(ABC):
    """Base class of selectors. Subclasses set `name` and `needs`, and implement [`select`].

    `needs` is `"scalar"` (reads `inputs.scores`), `"vector"` (reads `inputs.vectors`) or `"none"` (reads neither);
    `needs_aux` names the auxiliary arrays of `inputs.aux` it cannot work without.
    [`__call__`] enforces the contract: exactly the requested number of distinct rows, sorted, and no class emptied
    unless allowed.
    """

    name: ClassVar[str]
    needs: ClassVar[str] = "scalar"
    #: Whether the selector can work from a tolerance `epsilon` instead of a row count.
    supports_epsilon: ClassVar[bool] = False
    #: Whether the selector honours `min_per_class` floors.
    supports_floors: ClassVar[bool] = True
    #: Names of the auxiliary per-row arrays (`SelectionInputs.aux`) the selector needs, checked against the score's
    #: `provides_aux` when a pruner pairs them (a selector whose options change what it needs sets it per instance).
    needs_aux: tuple[str, ...] = ()

    def __init__(self, **options: Any):
        if options:
            raise InvalidArgumentError(
                f"Selector `{self.name}` takes no option(s) {sorted(options)}."
            )

    def options(self) -> dict[str, Any]:
        return {}

    @abstractmethod
    def select(self, inputs: SelectionInputs, budget: Budget) -> SelectionOutput | np.ndarray:
        """Return the rows to keep."""

    def __call__(self, inputs: SelectionInputs, budget: Budget) -> SelectionOutput:
        n = inputs.num_samples
        if self.needs == "scalar" and inputs.scores is None:
            raise SelectionError(f"Selector `{self.name}` needs a scalar score; none was given.")
        if self.needs == "vector" and inputs.vectors is None:
            raise SelectionError(
                f"Selector `{self.name}` needs per-row influence vectors; use a vector method such as "
                "`sgd_influence` or `influence_function`."
            )
        if inputs.min_per_class and not self.supports_floors:
            raise InvalidArgumentError(
                f"Selector `{self.name}` does not support `min_per_class` (it keeps a score band or strata as published); "
                "use `topk`, `random`, `dual_beta`, `greedy` or `mip` for per-class floors."
            )
        if budget.epsilon is not None and not self.supports_epsilon:
            raise InvalidArgumentError(
                f"Selector `{self.name}` prunes to a ratio; `epsilon` (a parameter-shift tolerance) needs a vector "
                "selector (`greedy` or `mip`)."
            )
        output = self.select(inputs, budget)
        if not isinstance(output, SelectionOutput):
            output = SelectionOutput(kept=np.asarray(output))
        kept = np.unique(np.asarray(output.kept, dtype=np.int64))
        if len(kept) != len(output.kept):
            raise SelectionError(f"Selector `{self.name}` returned duplicate rows.")
        if len(kept) and (kept[0] < 0 or kept[-1] >= n):
            raise SelectionError(f"Selector `{self.name}` returned rows outside [0, {n}).")
        if budget.n_keep is not None and len(kept) != budget.n_keep:
            raise SelectionError(f"Selector `{self.name}` kept {len(kept)} rows instead of {budget.n_keep}.")
        if not len(kept):
            raise SelectionError(
                f"`epsilon={budget.epsilon}` lets every row go: the summed influence of all {n} rows stays within it. "
                "Use a smaller `epsilon` (or `min_per_class` floors), or prune to a ratio."
            )
        smaller = "a smaller `epsilon`" if budget.epsilon is not None else "a smaller ratio"
        if not inputs.allow_empty_classes:
            present = np.unique(inputs.labels)
            kept_classes = np.unique(inputs.labels[kept])
            emptied = np.setdiff1d(present, kept_classes)
            if len(emptied):
                raise SelectionError(
                    f"The selection keeps no row of class(es) {emptied.tolist()} (selector `{self.name}`, "
                    f"{len(kept)} of {n} rows kept). Pass `min_per_class=1` to keep every class, {smaller}, or "
                    "`allow_empty_classes=True` to accept it."
                )
        output.kept = kept
        return output


_REGISTRY: Registry[Selector] = Registry("selector", Selector)
SELECTOR_REGISTRY = _REGISTRY.classes


def register_selector(cls: type[Selector] | None = None, *, overwrite: bool = False):
    """Class decorator adding a selector to the registry under `cls.name`."""
    return _REGISTRY.register(cls, overwrite=overwrite)


def list_selectors() -> list[str]:
    """Names of all registered selectors."""
    return _REGISTRY.names()


def selector_class(name: str) -> type[Selector]:
    """The registered selector class called `name` (raises [`UnknownPluginError`] listing the known names)."""
    return _REGISTRY.lookup(name)


def get_selector(spec: str | Selector, **options: Any) -> Selector:
    """A selector instance from a registered name (with options) or an instance (returned as is)."""
    return _REGISTRY.create(spec, **options)


def accepted_options(cls: type) -> set[str]:
    """Keyword options a score or selector class accepts (its constructor's named parameters)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            for name, param in inspect.signature(vars(klass)["__init__"]).parameters.items():
                if name != "self" and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                    names.add(name)
    return names


@dataclass
class SelectionConfig:
    """Everything decided after training: which score, which selector, and the shared selection constraints.

    The defaults are the library's default policy, what `HFPruner(trainer)` runs: the `dual` score kept by the
    `dual_beta` selector ([`hf_prune.defaults.DEFAULT_METHOD`], [`hf_prune.defaults.DEFAULT_SELECTOR`]).

    Args:
        method (`str`, defaults to `"dual"`): Name of the score (see `hf_prune.list_scores()`).
        selector (`str`, *optional*, defaults to `"dual_beta"`): Name of the selector (see
            `hf_prune.list_selectors()`). `None` stands for the method's own default, as with
            `HFPruner(trainer, method=...)` ([`hf_prune.config.default_selector`]: the score's `default_selector`,
            else `greedy` for influence vectors and `topk` for scalar scores). Set it (or `None`) whenever you set
            `method`: the default selector belongs to the default method (`dual_beta` reads the `dual` score's
            auxiliary arrays).
        class_quota (`str`, *optional*): `"none"` (no per-class constraint) or `"proportional"` (every class keeps
            its share of rows); `None` uses the selector's default.
        min_per_class (`int`): Every class keeps at least this many rows.
        allow_empty_classes (`bool`): Accept a subset that keeps no row of some class (an error otherwise).
        seed (`int`): Seed for every random choice of scoring and selection.
        score_options (`dict`): Options of the score.
        selector_options (`dict`): Options of the selector.
    """

    method: str = DEFAULT_METHOD
    selector: str | None = DEFAULT_SELECTOR
    class_quota: str | None = None
    min_per_class: int = 0
    allow_empty_classes: bool = False
    seed: int = 0
    score_options: dict[str, Any] = field(default_factory=dict)
    selector_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.class_quota not in (None, "none", "proportional"):
            raise InvalidArgumentError(
                f"`class_quota` must be 'none' or 'proportional', got {self.class_quota!r}."
            )
        check_int("min_per_class", self.min_per_class, minimum=0, numpy=False)
        check_int("seed", self.seed, minimum=0, hint="numpy random generators take seeds of 0 or more")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
