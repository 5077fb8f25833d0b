"""Score plugins: the registry and the one output contract every score obeys.

**Sign convention (all scores): higher means keep.** A selector that keeps "the top" of a score keeps the highest
values. Scores whose natural reading is the other way round (e.g. AUM, where *low* means hard) document how they are
oriented.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..checkpoints import checkpoint_summary
from ..errors import InvalidArgumentError, ScoreNotComputableError
from ..registry import Registry


if TYPE_CHECKING:
    from ..tracking.record import TrainingRecord


@dataclass
class ScoreOutput:
    """What a score produces.

    Attributes:
        values (`np.ndarray`): One float per training row, `(n,)`, higher means keep.
        vectors (`np.ndarray`, *optional*): Per-row vectors `(n, k)` for vector selectors (influence methods), e.g. a
            memory-mapped sketch of each sample's parameter influence.
        aux (`dict`): Extra per-row arrays a selector may use (e.g. `p_mean` for DUAL's Beta sampling,
            `eval_vectors` for unbiased objective reports of influence selections), named in the score's
            `provides_aux`.
        extra (`dict`): Further scalar scores computed on the way (one value per row, higher means keep); the pruner
            adds them as `score_<name>` columns (e.g. `sgd_influence_eval`).
        info (`dict`): JSON-serialisable facts about the computation (epochs read, sketch size, timings).
    """

    values: np.ndarray
    vectors: np.ndarray | None = None
    aux: dict[str, np.ndarray] = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScoringContext:
    """Everything a score may use besides the record.

    Attributes:
        seed (`int`): Seed for any randomness (random scores, sketches).
        trainer (*optional*): The `PruneTrainer` that made the record, when available (needed only by scores that run
            the model again, such as `influence_function`'s final-model pass or score extrapolation).
        cache_dir (`str`, *optional*): Where a score may store large arrays (memory-mapped vectors); a writable
            directory, from [`TrainingRecord.cache_dir`] (next to the record, or the user cache for a read-only one).
    """

    seed: int = 0
    trainer: Any = None
    cache_dir: str | None = None


class ScoreFunction(ABC):
    """Base class of scores. Subclasses set `name`, document their inputs and sign, and implement [`compute`].

    Options are passed as keyword arguments to the constructor and validated there; [`__call__`] enforces the output
    contract (shape `(n,)`, finite, float64) once for every score.
    """

    name: ClassVar[str]
    #: "scalar" scores give one value per row; "vector" scores also give per-row vectors for vector selectors.
    kind: ClassVar[str] = "scalar"
    #: Record signals the score reads ("features" for the head input; "trajectory" for the optimizer's steps, which a
    #: record made from saved checkpoints does not hold).
    requires: ClassVar[frozenset[str]] = frozenset()
    #: Selector used when none is given (None: `topk` for scalar scores, `greedy` for vector scores).
    default_selector: ClassVar[str | None] = None
    #: Names of the auxiliary per-row arrays the score puts in `ScoreOutput.aux` (e.g. `dual`: `p_mean`,
    #: `memorized`), checked against what a selector reads (`Selector.needs_aux`) when a pruner pairs them. A class
    #: that defines `compute` declares its own (see [`provided_aux`]).
    provides_aux: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **options: Any):
        if options:
            raise InvalidArgumentError(
                f"Score `{self.name}` takes no option(s) {sorted(options)}; see `hf_prune.get_score({self.name!r})` "
                "for its documented options."
            )

    def options(self) -> dict[str, Any]:
        """The score's options (JSON-serialisable), saved with every result."""
        return {}

    @abstractmethod
    def compute(self, record: TrainingRecord, context: ScoringContext) -> ScoreOutput | np.ndarray:
        """Compute the score of every row of the training set."""

    def __call__(self, record: TrainingRecord, context: ScoringContext | None = None) -> ScoreOutput:
        context = context or ScoringContext()
        if "features" in self.requires and not record.has_features:
            raise ScoreNotComputableError(
                f"Score `{self.name}` needs the head input (penultimate features), but the record was made with "
                "`track_features=False`. Train again with `PruneArguments(track_features=True)`."
            )
        checkpoints = checkpoint_summary(record)
        if checkpoints is not None:
            check_reads_checkpoints(self, checkpoints["count"])
        output = self.compute(record, context)
        if not isinstance(output, ScoreOutput):
            output = ScoreOutput(values=np.asarray(output))
        if checkpoints is not None:
            output.info.setdefault("checkpoints", checkpoints)
        values = np.asarray(output.values, dtype=np.float64)
        n = record.num_samples
        if values.shape != (n,):
            raise ScoreNotComputableError(f"Score `{self.name}` returned shape {values.shape}, expected ({n},).")
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            dropped = (record.meta.get("training") or {}).get("dataloader_drop_last")
            cause = ("the scoring run dropped the last incomplete batch of every epoch (`dataloader_drop_last=True`), "
                     "so other rows went unseen in each epoch: train the scoring run with "
                     "`dataloader_drop_last=False`," if dropped else
                     "train for full epochs (not a `max_steps` that stops mid-epoch; a run stopped inside its first "
                     "epoch never saw these rows, and even the default's fallback for short records needs one full "
                     "epoch),")
            raise ScoreNotComputableError(
                f"Score `{self.name}` is not finite for {len(bad)} rows (e.g. source indices {bad[:5].tolist()}). "
                f"Rows never seen in the epochs the score reads have no value: {cause} or pick a score that reads "
                "other epochs (e.g. `el2n`, `forgetting`, `aum`)."
            )
        declared = provided_aux(self)
        if declared is not None and not set(output.aux) <= set(declared):
            raise ScoreNotComputableError(
                f"Score `{self.name}` returned the auxiliary array(s) {sorted(set(output.aux) - set(declared))} but "
                f"declares `provides_aux = {tuple(declared)!r}`; add them to its `provides_aux`."
            )
        if output.vectors is not None and output.vectors.shape[0] != n:
            raise ScoreNotComputableError(
                f"Score `{self.name}` returned {output.vectors.shape[0]} vectors for {n} rows."
            )
        for name, extra in output.extra.items():
            extra = np.asarray(extra, dtype=np.float64)
            if extra.shape != (n,) or not np.isfinite(extra).all():
                raise ScoreNotComputableError(f"Extra score `{name}` of `{self.name}` is not a finite ({n},) array.")
            output.extra[name] = extra
        output.values = values
        return output


def provided_aux(score: ScoreFunction | type[ScoreFunction]) -> tuple[str, ...] | None:
    """The auxiliary arrays a score declares it puts in `ScoreOutput.aux`, or `None` when it declares none.

    A declaration describes the `compute` of the class that makes it, so it is read from the score's class or its
    nearest parent, but not from above the class that defines `compute`: a subclass that overrides `compute` without
    declaring `provides_aux` (a plugin written before declarations existed, or one that adds arrays to a parent's
    output) is undeclared. Undeclared scores are not checked; the selector reports a missing array when it runs.

    Args:
        score (`ScoreFunction` or its class): The score.

    Returns:
        `tuple[str, ...]` or `None`: the declared names (empty: the score provides none), or `None` if undeclared.

    Example:

    ```python
    >>> provided_aux(get_score("dual")), provided_aux(get_score("el2n"))
    (('p_mean', 'memorized', 'learned_epoch'), ())
    ```
    """
    cls = score if isinstance(score, type) else type(score)
    for klass in cls.__mro__:
        if "provides_aux" in vars(klass):
            return tuple(vars(klass)["provides_aux"])
        if "compute" in vars(klass):
            return None
    return None


def check_reads_checkpoints(score: ScoreFunction, count: int | None = None) -> None:
    """Refuse a score that traces the optimizer's trajectory on a record made from saved checkpoints (`count` of
    them), which holds forward passes only."""
    if "trajectory" not in score.requires:
        return
    made_from = f"{count} saved checkpoint(s)" if count is not None else "saved checkpoints"
    raise ScoreNotComputableError(
        f"Score `{score.name}` traces the optimizer's trajectory (which rows formed every step, the learning rates, "
        f"the optimizer state), but a record made from {made_from} by forward passes only "
        "(`HFPruner.from_checkpoints`) holds no trajectory. Train with `PruneTrainer` to record one, or pick a score "
        "that reads checkpoints (`tracin_cp`, `el2n`, `grand`, `dual`, `forgetting`, `aum`, `influence_function`)."
    )


_REGISTRY: Registry[ScoreFunction] = Registry("score", ScoreFunction)
SCORE_REGISTRY = _REGISTRY.classes


def register_score(cls: type[ScoreFunction] | None = None, *, overwrite: bool = False):
    """Class decorator adding a score to the registry under `cls.name`.

    Example:

    ```python
    >>> @register_score
    ... class LastLoss(ScoreFunction):
    ...     name = "last_loss"
    ...     def compute(self, record, context):
    ...         return record.epoch_table("loss")[-1]   # high loss = hard = keep
    ```
    """
    return _REGISTRY.register(cls, overwrite=overwrite)


def list_scores() -> list[str]:
    """Names of all registered scores."""
    return _REGISTRY.names()


def score_class(name: str) -> type[ScoreFunction]:
    """The registered score class called `name` (raises [`UnknownPluginError`] listing the known names)."""
    return _REGISTRY.lookup(name)


def get_score(spec: str | ScoreFunction, **options: Any) -> ScoreFunction:
    """A score instance from a registered name (with options) or an instance (returned as is)."""
    return _REGISTRY.create(spec, **options)


def check_epochs(name: str, record: TrainingRecord, needed: int | None) -> int:
    """Number of epochs to read, checked against what the record holds."""
    available = len(record.epochs)
    if needed is None:
        return available
    if needed > available:
        raise ScoreNotComputableError(
            f"Score `{name}` needs {needed} epochs but the record holds {available}. Train for at least {needed} "
            f"epochs (or pass a smaller `epochs` option)."
        )
    return needed
