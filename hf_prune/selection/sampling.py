"""Score-shaped selectors that do not simply keep the top: `ccs`, `moderate` and `dual_beta`.

All read a scalar score with hf_prune's convention (**higher means keep / harder**).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import logging
from ..errors import InvalidArgumentError, SelectionError
from ..scores.dynamics import lowest_share_per_class
from ..validation import check_int, check_number
from .base import Budget, SelectionInputs, SelectionOutput, Selector, allocate, class_targets, register_selector


logger = logging.get_logger(__name__)


def ccs_cutoff(ratio: float) -> float:
    """Default hard-cutoff fraction of CCS by pruning ratio (the CCS README's examples: 0.2 at 80 %, 0.3 at 90 %)."""
    if ratio <= 0.5:
        return 0.0
    if ratio <= 0.7:
        return 0.1
    if ratio <= 0.8:
        return 0.2
    return 0.3


def stratified_allocation(populations: np.ndarray, budget: int) -> np.ndarray:
    """CCS budget allocation: visit strata by increasing population, each takes `min(size, remaining // strata_left)`.

    Any budget left by the integer division is then given to strata with spare rows, largest first, so the total is
    exact.
    """
    populations = np.asarray(populations, dtype=np.int64)
    alloc = np.zeros_like(populations)
    remaining = int(budget)
    order = np.argsort(populations, kind="stable")
    for position, stratum in enumerate(order):
        left = len(order) - position
        take = min(int(populations[stratum]), remaining // left)
        alloc[stratum] = take
        remaining -= take
    for stratum in np.argsort(-(populations - alloc), kind="stable"):
        if remaining <= 0:
            break
        extra = min(int(populations[stratum] - alloc[stratum]), remaining)
        alloc[stratum] += extra
        remaining -= extra
    return alloc


@register_selector
class CCSSelector(Selector):
    """`ccs` (Zheng et al., ICLR 2023, arXiv 2210.15809): coverage-centric stratified sampling.

    1. Drop the `cutoff` fraction of rows with the *highest* score (the hardest: likely mislabeled; with `aum`, the
       lowest AUM as in CCS);
    2. split the remaining score range `[min, max]` into `strata` equal-width bins;
    3. allocate the budget over the bins by increasing population (see [`stratified_allocation`]);
    4. sample uniformly inside each bin (seeded).

    Options: `strata` (default 50), `cutoff` (`"auto"`: 0 up to 50 % pruning, 0.1 up to 70 %, 0.2 up to 80 %, 0.3
    above; or a fraction in [0, 1)). With one stratum and no cutoff it is uniform random sampling.
    """

    name = "ccs"
    supports_floors = False

    def __init__(self, strata: int = 50, cutoff: float | str = "auto", **options: Any):
        super().__init__(**options)
        self.strata = check_int("strata", strata, minimum=1)
        if cutoff != "auto":
            check_number("cutoff", cutoff, 0, 1, high_open=True, accepted="'auto' or a fraction in [0, 1)")
        self.cutoff = cutoff

    def options(self):
        return {"strata": self.strata, "cutoff": self.cutoff}

    def select(self, inputs: SelectionInputs, budget: Budget) -> SelectionOutput:
        scores = np.asarray(inputs.scores, dtype=np.float64)
        n = len(scores)
        # The tier is read from the ratio asked for: the kept count is rounded, and for many `n` the ratio it
        # implies lies just above a tier's boundary (0.5 of 45 rows keeps 22, an implied 0.511).
        ratio = budget.ratio if budget.ratio is not None else 1.0 - budget.n_keep / n
        cutoff = ccs_cutoff(ratio) if self.cutoff == "auto" else float(self.cutoff)
        rng = np.random.default_rng(inputs.seed)
        order = np.lexsort((rng.permutation(n), -scores))
        dropped = int(np.floor(cutoff * n))
        dropped = min(dropped, n - budget.n_keep)  # never cut so deep that the budget cannot be met
        pool = np.sort(order[dropped:])
        values = scores[pool]
        lo, hi = values.min(), values.max()
        if hi > lo:
            # [min, max] split into equal bins; the top edge is nudged up so the maximum falls in the last bin.
            edges = np.linspace(lo, hi + 1e-4 * (hi - lo), self.strata + 1)
            bins = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, self.strata - 1)
        else:
            bins = np.zeros(len(values), dtype=np.int64)
        populations = np.bincount(bins, minlength=self.strata)
        alloc = stratified_allocation(populations, budget.n_keep)
        kept = [rng.choice(pool[bins == b], size=int(alloc[b]), replace=False) for b in range(self.strata) if alloc[b]]
        return SelectionOutput(
            kept=np.concatenate(kept),
            info={"cutoff": cutoff, "dropped_hardest": dropped, "strata": self.strata,
                  "per_stratum": alloc.tolist()},
        )


@register_selector
class ModerateSelector(Selector):
    """`moderate` (Xia et al., ICLR 2023): keep the central band of score ranks.

    Rows are ranked globally by the score (with the `moderate` score: distance to the class median) and the ranks
    `[(n − n_keep)/2, (n + n_keep)/2)` are kept: neither the most typical nor the most atypical rows.
    """

    name = "moderate"
    supports_floors = False

    def select(self, inputs: SelectionInputs, budget: Budget) -> SelectionOutput:
        scores = np.asarray(inputs.scores, dtype=np.float64)
        n = len(scores)
        rng = np.random.default_rng(inputs.seed)
        order = np.lexsort((rng.permutation(n), scores))
        start = (n - budget.n_keep) // 2
        return SelectionOutput(kept=order[start : start + budget.n_keep], info={"band_start_rank": int(start)})


def beta_parameters(ratio: float, anchor: float, c_d: float) -> tuple[float, float]:
    """DUAL's ratio-adaptive Beta parameters: `β_r = 15(1 − μ*)(1 − r^{c_D})`, `α_r = 16 − β_r`."""
    beta = 15.0 * (1.0 - anchor) * (1.0 - ratio**c_d)
    return 16.0 - beta, beta


def beta_log_density(p: np.ndarray | float, alpha: float, beta: float) -> np.ndarray | float:
    """The Beta's log-density at `p`, up to its constant: `(α − 1) log p + (β − 1) log(1 − p)`."""
    return (alpha - 1.0) * np.log(p) + (beta - 1.0) * np.log1p(-p)


def inclusion_probabilities(weights: np.ndarray, count: int) -> np.ndarray:
    """Inclusion probabilities `p_i = min(1, c·w_i)` with `Σ p_i = count` (capping the heaviest rows at 1)."""
    weights = np.asarray(weights, dtype=np.float64)
    probs = np.zeros_like(weights)
    capped = np.zeros(len(weights), dtype=bool)
    for _ in range(len(weights) + 1):
        free = ~capped & (weights > 0)
        remaining = count - int(capped.sum())
        total = weights[free].sum()
        if remaining <= 0 or total <= 0:
            break
        probs[free] = weights[free] * remaining / total
        over = free & (probs >= 1.0)
        if not over.any():
            break
        capped |= over
        probs[capped] = 1.0
    probs[capped] = 1.0
    if probs.sum() < count - 1e-9:
        # Not enough rows with positive weight: spread the rest uniformly over the zero-weight rows.
        zero = probs == 0
        probs[zero] = (count - probs.sum()) / max(zero.sum(), 1)
    return np.clip(probs, 0.0, 1.0)


def successive_inclusion_probabilities(weights: np.ndarray, count: int) -> np.ndarray:
    """Inclusion probabilities of drawing `count` rows one by one without replacement with probabilities `∝ w`
    (`numpy`'s `choice(replace=False, p=...)`, the DUAL reference code's draw): `p_i = 1 − exp(−t·w_i)` with `t` such
    that `Σ p_i = count` (Rosén's approximation for this draw, close once more than a few rows are drawn)."""
    weights = np.asarray(weights, dtype=np.float64)
    positive = weights > 0
    if count <= 0 or count >= positive.sum():
        # Every row with a positive weight is drawn (the rest of the budget spread over the zero-weight rows): the
        # proportional probabilities say the same.
        return inclusion_probabilities(weights, count)
    scaled = weights / weights[positive].max()
    low, high = 0.0, 1.0
    while (-np.expm1(-high * scaled)).sum() < count:
        high *= 2.0
        if not np.isfinite(high):
            # Weights spanning more than the float range: the draw keeps the heavy rows for sure and the light ones
            # in proportion among themselves, which is what the proportional design says.
            return inclusion_probabilities(weights, count)
    for _ in range(200):  # bisection on t: the sum is increasing in t
        middle = 0.5 * (low + high)
        if (-np.expm1(-middle * scaled)).sum() < count:
            low = middle
        else:
            high = middle
    return -np.expm1(-high * scaled)


def uniform_design(size: int, count: int, eligible: np.ndarray | None = None) -> np.ndarray:
    """Inclusion probabilities of a uniform draw of `count` of `size` rows (summing to `count`): `count / size` each,
    or, given an `eligible` mask, `count / e` for the `e` eligible rows and 0 for the others when `e ≥ count`, else 1
    for the eligible rows and `(count − e) / (size − e)` for the others."""
    if eligible is None:
        return np.full(size, count / size)
    e = int(eligible.sum())
    if e >= count:
        return np.where(eligible, count / max(e, 1), 0.0)
    return np.where(eligible, 1.0, (count - e) / (size - e))


def systematic_sample(probs: np.ndarray, order: np.ndarray, offset: float) -> np.ndarray:
    """Systematic πps sampling: walk the rows in `order`, take a row whenever the running inclusion mass crosses
    `offset + j` (j = 0, 1, …). Every row is taken at most once, the count equals `round(Σ p)`, and the sample is
    spread evenly along `order` (here: by difficulty), which removes most of the variance of independent draws."""
    cumulative = np.cumsum(probs[order])
    crossings = np.floor(cumulative - offset + 1e-12) - np.floor(np.concatenate([[0.0], cumulative[:-1]]) - offset + 1e-12)
    return np.sort(order[crossings > 0])


#: `dual_beta(late_rows="auto")` treats a subset as step-starved when it gets at most this many optimizer steps (or at
#: most one epoch's worth of the scoring run's); chosen on the benchmark's tuning tasks, see
#: benchmarks/predeclared/2026-12-04_step_starved_horizon.md.
STARVED_STEPS = 100
#: `dual_beta(shrink="gate")` follows scores whose split-half agreement is positive at this one-sided level (the
#: conventional 1 %, fixed before any benchmark row; benchmarks/predeclared/2026-12-04_trust_gate.md).
TRUST_GATE_ALPHA = 0.01


def reliability_gate(reliability: float, n: int, alpha: float = TRUST_GATE_ALPHA) -> tuple[bool, float]:
    """Whether a split-half reliability `ρ` (Spearman-Brown corrected, over `n` rows) is beyond chance, and the
    one-sided p-value: the halves' correlation `r = ρ / (2 − ρ)` tested against 0 with Fisher's z,
    `z = atanh(r)·sqrt(n − 3)` (Fisher 1915, https://doi.org/10.2307/2331838), `p = 1 − Φ(z)`. Fewer than 4 rows
    are never beyond chance."""
    if n < 4:  # Fisher's z needs n − 3 > 0: too few rows to tell agreement from chance
        return False, 1.0
    rho = min(max(float(reliability), 0.0), 1.0)
    r = min(rho / (2.0 - rho), 1.0 - 1e-12)
    z = math.atanh(r) * math.sqrt(n - 3)
    p_value = 0.5 * math.erfc(z / math.sqrt(2.0))
    return p_value < alpha, p_value


#: `dual_beta` does not follow a short record (`score_epochs` below the recipe's epochs) that covers less than this share
#: of the planned epochs, nor one of at most `STARVED_STEPS` optimizer steps
#: (benchmarks/predeclared/2026-12-05_short_record.md, rule R6).
SHORT_RECORD_SHARE = 1.0 / 3.0


def is_short_record(check: dict[str, Any]) -> bool:
    """Whether a self-check's record read fewer whole epochs than the recipe plans (`score_epochs`; a trailing
    part-epoch of the schedule, `num_train_epochs=2.5`, does not count)."""
    recorded, planned = check.get("recorded_epochs"), check.get("planned_epochs")
    return recorded is not None and planned is not None and recorded < math.floor(planned + 1e-9)


def short_record(check: dict[str, Any]) -> str | None:
    """Why a short record (`recorded_epochs < planned_epochs`: `score_epochs`) is too short to follow, or `None`
    (a full record, one long enough, or one whose epochs are unknown): it covers less than `SHORT_RECORD_SHARE` of
    the planned epochs, or its optimizer steps (`recorded_epochs × steps_per_epoch`) are at most `STARVED_STEPS`."""
    if not is_short_record(check):
        return None
    recorded, planned, per_epoch = (check.get(k) for k in ("recorded_epochs", "planned_epochs", "steps_per_epoch"))
    causes = []
    if recorded < SHORT_RECORD_SHARE * planned - 1e-9:
        causes.append("less than a third of the schedule")
    if per_epoch is not None and recorded * per_epoch <= STARVED_STEPS + 1e-9:
        causes.append(f"{recorded * per_epoch:g} optimizer steps, at most {STARVED_STEPS}")
    return f"{recorded} of the recipe's {planned:g} epochs: {' and '.join(causes)}" if causes else None


def late_horizon(subset_epochs: float) -> int:
    """`h = max(1, ⌈(1 − r)·E⌉)`: the scoring run's epochs a subset with `(1 − r)·E` epochs' worth of its optimizer
    steps is measured against (the rows the run learned only after `h` epochs are its late rows)."""
    return max(1, int(np.ceil(subset_epochs - 1e-9)))


def regime_signal(inputs: SelectionInputs, prequential_gap: float, source: str = "eval") -> tuple[str, float]:
    """Which gap decides the memorisation regime, and its value. `source="eval"`: the held-out gap (training fit
    minus the accuracy on the trainer's `eval_dataset`, recorded at the end of the scoring run) when the run has
    one, else the prequential memorisation gap of the first epoch; `"prequential"`: always the latter."""
    eval_gap = (inputs.aux_info.get("self_check") or {}).get("eval_gap")
    if eval_gap is not None and source == "eval":
        return "eval", float(eval_gap)
    return "prequential", float(prequential_gap)


@register_selector
class DualBetaSelector(Selector):
    """`dual_beta` (Cho et al., ICML 2025): DUAL's ratio-adaptive Beta sampling.

    `π_i ∝ BetaPDF(P̄_i; α_r, β_r) · score_i` with `P̄_i` the mean true-class probability over the scored epochs
    (the `p_mean` the `dual` score provides, clamped to `[1e-3, 1 − 1e-3]`), `μ*` the mean `P̄` of the 10
    highest-scoring rows, `β_r = 15 (1 − μ*)(1 − r^{c_D})`, `α_r = 16 − β_r`. As the ratio grows the Beta mass moves
    to easy rows (`P̄ → 1`), which avoids the collapse of hard-only subsets.

    Options:
        c_d (`float`, defaults to 4): the DUAL README's CIFAR value.
        sampling (`str`, defaults to `"systematic"`): `"random"` draws `n_keep` rows without replacement with
            probabilities `π` (the reference code); `"systematic"` keeps rows with the inclusion probabilities of
            `inclusion` by systematic sampling along `P̄` (deterministic for a seed, far lower variance).
        hard_cutoff (`str`, defaults to `"regime"`): what to do with the rows the run fit only by memorising them.
            The `dual` score measures the *memorisation gap* `g` (last-epoch training accuracy minus the
            prequential accuracy of the first epoch's second half, where rows are predicted before being trained
            on; see `hf_prune.scores.dynamics.memorization_gap`) and flags, in every class, the share `g` of rows
            with the lowest `P̄` (`aux["memorized"]`).
            `"none"`: sample from every row (the reference code). `"auto"`: always set the flagged rows aside (no
            weight; used only when the budget exceeds the other rows), with the anchor `μ*` taken among the
            others. `"regime"` (the library default): decide from the gap. When `g ≥ regime_gap` the run is in the
            memorisation regime (the model fits much of what it could not predict: label noise, ambiguous rows,
            too little data for the model; where keeping the hardest rows hurts, Sorscher et al. 2022), so the
            flagged rows are set aside and every class is sampled on its own (unless `class_quota="none"` is
            given); otherwise the selection is exactly that of `"none"`.
        regime_gap (`float`, defaults to 0.15): the threshold of `"regime"` (the gaps of the benchmark's runs are in
            benchmarks/README.md).
        cutoff_scale (`str`, defaults to `"ratio"`): how many flagged rows are set aside when the cutoff applies.
            `"gap"`: all of them (the share `g` of every class). `"ratio"`: in every class, the share `r` (the
            pruning ratio) of its flagged rows, those of lowest `P̄` first, so a subset that keeps much of the data
            also keeps much of what was memorised, and a small one keeps almost none of it.
        inclusion (`str`, defaults to `"successive"`): the inclusion probabilities of `sampling="systematic"`.
            `"proportional"`: `p_i = min(1, c·π_i)`, the πps design. `"successive"`: those of the reference code's
            draw without replacement, `p_i = 1 − exp(−t·π_i)`, flatter in `π` (a row of half the weight of another
            is kept more than half as often), so systematic sampling keeps the reference's subsets in expectation and
            removes only their draw noise (the library default uses it). No effect with `sampling="random"`.
        class_floor (`float`, defaults to 0.5): no class keeps fewer than this share of its proportional quota
            (`⌊class_floor · n_keep · n_c / n⌋` rows): DUAL-Beta's weights can starve the classes whose rows are all
            easy (or, on unbalanced data, a small class), and a class that loses far more than its share is rarely
            what a user wants. Whenever classes are drawn on their own (a trust `ρ < 1`, or a class the draw would
            leave below its floor; a warning names those), every class keeps its floor plus a share of the rest of
            the budget in proportion to its target count (see [`class_plan`]): with the 0.5 floor, about half-way
            between its proportional share and its target. With `ρ = 1` and no class below its floor the draw is
            unchanged. `0` disables it; `class_quota="none"` too.
        shrink (`str`, defaults to `"gate"`): how far the draw follows the scores, from the `dual` score's
            self-check (the split-half reliability `ρ` of the rows' difficulty; see [`trust`]). `"gate"`: follow them
            fully (trust 1) when the two halves agree beyond chance (their within-class rank correlation positive at
            one-sided p < `TRUST_GATE_ALPHA` = 0.01), else not at all (trust 0: class-stratified uniform sampling);
            for a step-starved subset (the test of `late_rows`, applied whatever `late_rows` is set to) the trust is
            `ρ` itself, as under `"reliability"`. `"reliability"`: the trust is `ρ` at every ratio (Kelley's shrinkage
            of the design). `"none"`: trust 1. Scores without a self-check are not followed under `"gate"` and
            `"reliability"`; extrapolated scores are followed at their out-of-sample reliability at every ratio.
        late_rows (`str`, defaults to `"auto"`): what to do with the rows the scoring run learned for good late
            (the `dual` score's `learned_epoch`). A subset of ratio `r` trained for `E` epochs gets `(1 − r)·E`
            epochs' worth of the scoring run's optimizer steps. `"auto"`: when the subset is step-starved (that share
            is at most one epoch, e.g. `r = 0.9` with 10 epochs or fewer, or it comes to at most `STARVED_STEPS` =
            100 optimizer steps, counted with the scoring run's steps per epoch), the rows the run learned only after
            `h = max(1, ⌈(1 − r)·E⌉)` epochs get no weight (drawn only when the rest cannot fill the budget): a model
            trained for so few steps learns little beyond what the full run learned in as many steps, and for the
            smallest budgets easy rows are worth more than hard ones (Sorscher et al. 2022,
            https://arxiv.org/abs/2206.14486). The rule may not plan a class below the smaller of its proportional
            share and its count without the rule (a class the run learned only late keeps that; see [`class_plan`]).
            Otherwise nothing changes. `"keep"`: never. The step count assumes the subset is trained with the scoring
            run's batch size unless `subset_batch_size` says otherwise. What it did is in the selection info
            (`late_set_aside`, `late_horizon_epochs`, `subset_recorded_epochs`, `subset_steps`, `late_guarded`); the
            measurements are in benchmarks/README.md.
        subset_epochs (`float`, *optional*): the epochs the subset will be trained for, when not those of the
            scoring run (default: its `num_train_epochs`); read by `late_rows="auto"`.
        subset_batch_size (`int`, *optional*): the rows per optimizer step the subset will be trained with
            (`per_device_train_batch_size` × processes × `gradient_accumulation_steps`), when not the scoring run's;
            read by `late_rows="auto"`, which then counts the subset's steps as `kept rows × epochs / subset_batch_size`
            instead of with the scoring run's steps per epoch.
    With `class_quota="proportional"` every class keeps its share and is sampled on its own. Subclasses can reshape
    the weights through [`shape_log_weights`] and [`shape_weights`].
    """

    name = "dual_beta"
    #: The weights read `p_mean` under every option; `hard_cutoff="auto"` also needs the `memorized` flags (set per
    #: instance; `"regime"` samples from every row, with a warning, when scores saved without them are selected again).
    needs_aux = ("p_mean",)

    def __init__(self, c_d: float = 4.0, sampling: str = "systematic", hard_cutoff: str = "regime",
                 regime_gap: float = 0.15, cutoff_scale: str = "ratio", inclusion: str = "successive",
                 class_floor: float = 0.5, shrink: str = "gate", regime_from: str = "eval",
                 late_rows: str = "auto", subset_epochs: float | None = None, subset_batch_size: int | None = None,
                 **options: Any):
        super().__init__(**options)
        if late_rows not in ("auto", "keep"):
            raise InvalidArgumentError(f"`late_rows` must be 'auto' or 'keep', got {late_rows!r}.")
        self.late_rows_rule = late_rows
        if subset_epochs is not None:
            check_number("subset_epochs", subset_epochs, 0, low_open=True, finite=True,
                         hint="It is the number of epochs the pruned subset will be trained for (e.g. 3).")
        self.subset_epochs = None if subset_epochs is None else float(subset_epochs)
        self.subset_batch_size = check_int(
            "subset_batch_size", subset_batch_size, minimum=1, allow_none=True, context="Selector `dual_beta`",
            hint="It is the number of rows per optimizer step the pruned subset will be trained with "
                 "(per-device batch size × processes × gradient accumulation steps).")
        if regime_from not in ("eval", "prequential"):
            raise InvalidArgumentError(f"`regime_from` must be 'eval' or 'prequential', got {regime_from!r}.")
        self.regime_from = regime_from
        if shrink not in ("gate", "reliability", "none"):
            raise InvalidArgumentError(f"`shrink` must be 'gate', 'reliability' or 'none', got {shrink!r}.")
        self.shrink = shrink
        self.class_floor = check_number(
            "class_floor", class_floor, 0, 1,
            hint="It is the least share of its proportional quota every class keeps: use 0 to draw without a floor, "
                 "1 for the proportional quota itself.",
        )
        check_number("c_d", c_d, 0, low_open=True, finite=True)
        if sampling not in ("random", "systematic"):
            raise InvalidArgumentError(f"`sampling` must be 'random' or 'systematic', got {sampling!r}.")
        if hard_cutoff not in ("none", "auto", "regime"):
            raise InvalidArgumentError(f"`hard_cutoff` must be 'none', 'auto' or 'regime', got {hard_cutoff!r}.")
        check_number("regime_gap", regime_gap, 0, 1)
        if cutoff_scale not in ("gap", "ratio"):
            raise InvalidArgumentError(f"`cutoff_scale` must be 'gap' or 'ratio', got {cutoff_scale!r}.")
        if inclusion not in ("proportional", "successive"):
            raise InvalidArgumentError(f"`inclusion` must be 'proportional' or 'successive', got {inclusion!r}.")
        self.c_d = float(c_d)
        self.sampling = sampling
        self.inclusion = inclusion
        self.hard_cutoff = hard_cutoff
        self.needs_aux = ("p_mean", "memorized") if hard_cutoff == "auto" else ("p_mean",)
        self.regime_gap = float(regime_gap)
        self.cutoff_scale = cutoff_scale

    def options(self):
        return {"c_d": self.c_d, "sampling": self.sampling, "hard_cutoff": self.hard_cutoff,
                "regime_gap": self.regime_gap, "cutoff_scale": self.cutoff_scale, "inclusion": self.inclusion,
                "class_floor": self.class_floor, "shrink": self.shrink, "regime_from": self.regime_from,
                "late_rows": self.late_rows_rule, "subset_epochs": self.subset_epochs,
                "subset_batch_size": self.subset_batch_size}

    def trust(self, inputs: SelectionInputs, starved: bool = False) -> tuple[float, str, dict[str, Any]]:
        """How far the selection follows the scores, in [0, 1], why, and the facts behind it (`trust_rule`:
        `"gate"`, `"step-starved"`, `"reliability"`, `"extrapolated"`, `"short-record"`, `"unmeasurable"` or `"none"`;
        `trust_p_value`: the gate's one-sided p-value when it was tested). `starved`: whether the subset is step-starved
        ([`step_budget`]).

        The reliability `ρ` of the run's difficulty ranks is the `dual` score's self-check: split-half over the scored
        epochs, or for extrapolated scores what the extrapolation reproduces out of sample. Under `shrink="gate"`
        (the default) a split-half `ρ` gives trust 1 when it is beyond chance ([`reliability_gate`]) and 0 otherwise,
        unless the subset is step-starved, where the trust is `ρ`: a subset's expected value is linear in its rows'
        inclusion probabilities, so a mixture of the scores' design and the uniform one never beats the better of the
        two in expectation, and scores that carry signal are followed in full; in the
        step-starved cells the mixture (Kelley's shrinkage) is what kept the default above random (candidate C8,
        benchmarks/predeclared/2026-12-04_trust_gate.md). Extrapolated scores get `ρ`. Under
        `shrink="reliability"`, `ρ` at every ratio; under `shrink="none"`, 1. Scores whose `ρ` cannot be measured
        get 0, and so does a short record (`score_epochs` below the recipe's epochs) that covers less than a third of
        the schedule or at most `STARVED_STEPS` optimizer steps, under either shrink ([`short_record`]): its halves
        can agree on what a barely trained model learned first, which is not how the whole run ranks the rows
        (benchmarks/predeclared/2026-12-05_short_record.md)."""
        if self.shrink == "none":
            return 1.0, "shrink='none'", {"trust_rule": "none", "trust_p_value": None}
        check = inputs.aux_info.get("self_check") or {}
        reliability = check.get("reliability")
        if reliability is not None and not math.isfinite(float(reliability)):
            check = {**check, "unmeasurable": f"the self-check's reliability is {reliability!r}, not a number"}
            reliability = None
        if reliability is None:
            # Scores that cannot be checked are not followed: Kelley's shrinkage weighs a score by its reliability
            # (Kelley 1927, https://gwern.net/doc/iq/1927-kelley-interpretationofeducationalmeasurements.pdf), and
            # with none measured there is nothing to weigh it by, so the draw is the class-stratified one. What
            # following such scores did on the benchmark is in benchmarks/README.md (History, 2026-12-04).
            why = check.get("unmeasurable") or "the scores carry no self-check"
            fix = (f"train with `PruneTrainer` (at least 2 epochs, `score_epochs=2` or more for a short run, and more "
                   f"than {STARVED_STEPS} optimizer steps)"
                   if "checkpoint" in why else
                   f"record at least 2 epochs (`score_epochs=2` or more) and more than {STARVED_STEPS} optimizer steps "
                   "with `PruneTrainer`")
            logger.warning(
                f"hf_prune: the scores' reliability cannot be measured ({why}), so dual_beta does not follow them and "
                f"keeps a class-stratified random subset. To let the scores count, {fix}; or choose a method "
                "explicitly (`method=`, `selector=`) and check it with `compare_with_random`."
            )
            return 0.0, (f"reliability not measurable ({why}): the scores are not followed, class-stratified uniform "
                         "sampling"), {"trust_rule": "unmeasurable", "trust_p_value": None}
        rho = float(min(max(reliability, 0.0), 1.0))
        extrapolated = check.get("extrapolation_fit") is not None
        measured = ("reliability of the extrapolated difficulty ranks (leave-one-out kNN fit on the seeds, squared)"
                    if extrapolated else "split-half reliability of the difficulty ranks")
        shrunk = (f"{measured} {rho:.2f}: a share {1.0 - rho:.2f} of every row's inclusion probability is "
                  "class-stratified uniform sampling")
        too_short = short_record(check)  # an extrapolated record's: its seed run's
        if too_short is not None:
            logger.warning(
                f"hf_prune: the scores come from a short record (`score_epochs`), the first {too_short}. A run that "
                "short ranks rows by what it learned first, not as the whole run would, so dual_beta does not follow "
                "the scores and keeps a class-stratified random subset. Record at least a third of the recipe's "
                f"epochs and more than {STARVED_STEPS} optimizer steps (a larger `score_epochs`), or score the whole run."
            )
            return 0.0, (f"{measured} {rho:.2f}, but the record is too short to follow (the first {too_short}): the "
                         "scores are not followed, class-stratified uniform sampling"), {
                             "trust_rule": "short-record", "trust_p_value": None}
        if extrapolated:
            return rho, shrunk, {"trust_rule": "extrapolated", "trust_p_value": None}
        if self.shrink == "reliability":
            return rho, shrunk, {"trust_rule": "reliability", "trust_p_value": None}
        if starved:
            return rho, shrunk + " (the subset is step-starved)", {"trust_rule": "step-starved", "trust_p_value": None}
        beyond_chance, p_value = reliability_gate(rho, inputs.num_samples)
        facts = {"trust_rule": "gate", "trust_p_value": p_value}
        if beyond_chance:
            if is_short_record(check):
                recorded, planned = check["recorded_epochs"], check["planned_epochs"]
                # Agreement between the first epochs says the early ranks are consistent, not that the whole run
                # would rank the rows the same way (benchmarks/results/cost.md, `first 2 epochs`).
                logger.warning(
                    f"hf_prune: dual_beta follows scores read from the first {recorded} of the recipe's {planned:g} "
                    "epochs (`score_epochs`): their halves agree, which says they are consistent, not that the whole "
                    "run would rank the rows the same way, and such subsets can train worse than random. Check this "
                    "one with `pruner.compare_with_random(ratio)` before training on it, or score the whole run."
                )
            return 1.0, (f"{measured} {rho:.2f}, beyond chance (one-sided p = {p_value:.2g}): the scores are "
                         "followed"), facts
        logger.warning(
            f"hf_prune: the two halves of the run do not agree on which rows are hard beyond chance (split-half "
            f"reliability {rho:.2f}, one-sided p = {p_value:.2g}), so dual_beta does not follow the scores and keeps "
            "a class-stratified random subset. A longer or steadier scoring run (more epochs, a lower learning rate) "
            "gives scores that can be checked."
        )
        return 0.0, (f"{measured} {rho:.2f}, not beyond chance (one-sided p = {p_value:.2g}): the scores are not "
                     "followed, class-stratified uniform sampling"), facts

    def memorised(self, inputs: SelectionInputs, ratio: float) -> tuple[np.ndarray, float, bool]:
        """The rows to set aside, the memorisation gap (share of flagged rows) and whether the cutoff applies."""
        n = inputs.num_samples
        if self.hard_cutoff == "none":
            return np.zeros(n, dtype=bool), float("nan"), False
        memorized = inputs.aux.get("memorized")
        if memorized is None and self.hard_cutoff == "regime":
            logger.warning(
                "The scores carry no memorisation flags (made by an older hf_prune?): `dual_beta` samples from every "
                "row (hard_cutoff='none'). Recompute the `dual` scores to let the library default decide."
            )
            return np.zeros(n, dtype=bool), float("nan"), False
        if memorized is None:
            raise SelectionError(
                f"`hard_cutoff={self.hard_cutoff!r}` needs the memorisation flags (`memorized`) that the `dual` score "
                "provides; recompute the scores with this version of hf_prune, or pass `hard_cutoff='none'`."
            )
        flags = np.asarray(memorized) > 0.5
        gap = float(flags.mean()) if n else 0.0
        applies = self.hard_cutoff == "auto" or regime_signal(inputs, gap, self.regime_from)[1] >= self.regime_gap
        if not applies or flags.all():
            return np.zeros(n, dtype=bool), gap, False
        if self.cutoff_scale == "ratio":
            flags = lowest_share_per_class(np.asarray(inputs.aux["p_mean"], dtype=np.float64), inputs.labels, ratio,
                                           among=flags)
        return flags, gap, True

    def weights(self, inputs: SelectionInputs, ratio: float) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        """Sampling weights `π` (unnormalised), the clamped `P̄`, and the Beta parameters."""
        p_mean = inputs.aux.get("p_mean")
        if p_mean is None:
            raise SelectionError(
                f"`{self.name}` needs the mean true-class probability of every row (`p_mean`), which the `dual` score "
                f"provides: use `HFPruner(trainer, method='dual', selector='{self.name}')`."
            )
        scores = np.asarray(inputs.scores, dtype=np.float64)
        p_bar = np.clip(np.asarray(p_mean, dtype=np.float64), 1e-3, 1.0 - 1e-3)
        set_aside, gap, applies = self.memorised(inputs, ratio)
        candidates = np.flatnonzero(~set_aside)
        top = candidates[np.argsort(-scores[candidates], kind="stable")[:10]]
        anchor = float(p_bar[top].mean())
        alpha, beta = beta_parameters(ratio, anchor, self.c_d)
        log_weight = self.shape_log_weights(beta_log_density(p_bar, alpha, beta), p_bar, anchor, alpha, beta, applies,
                                            inputs, ratio)
        weights = np.exp(log_weight - log_weight[candidates].max()) * np.maximum(scores, 0.0)
        weights = self.shape_weights(weights, applies, inputs, ratio)
        # Set-aside rows get no weight: they are drawn only when the rest cannot fill the budget (uniformly then).
        weights[set_aside] = 0.0
        late, horizon = self.late_rows(inputs, ratio)
        params = {"alpha": alpha, "beta": beta, "anchor_p": anchor, "memorization_gap": gap, "cutoff_applied": applies,
                  "set_aside": int(set_aside.sum()), **horizon, "late_set_aside": 0}
        if late is not None and late.any() and (weights[~late] > 0).any():
            # The weights before the rule go with the params for the class plan's guard (`select` takes them out).
            params.update(late_set_aside=int(late.sum()), late_free_weights=weights, late_rows_mask=late)
            weights = np.where(late, 0.0, weights)
        return weights, p_bar, params

    def late_rows(self, inputs: SelectionInputs, ratio: float) -> tuple[np.ndarray | None, dict[str, Any]]:
        """The rows beyond the subset's horizon when the subset is step-starved (else `None`), and what was measured:
        `subset_recorded_epochs` (`(1 − r)·E`, the subset's optimizer steps in epochs of the scoring run; `None` when
        the scores do not say `E`), `subset_steps` (those steps, counted with the run's steps per epoch, or as
        `kept rows × E / subset_batch_size` when that is given; `None` when unknown) and `late_horizon_epochs`
        (`h = max(1, ⌈(1 − r)·E⌉)`, set when the rule fires)."""
        info: dict[str, Any] = {"subset_recorded_epochs": None, "subset_steps": None, "late_horizon_epochs": None}
        if self.late_rows_rule == "keep":
            return None, info
        budget = self.step_budget(inputs, ratio)
        share = budget["subset_recorded_epochs"]
        if share is None:
            return None, info
        info.update(subset_recorded_epochs=share, subset_steps=budget["subset_steps"])
        learned = inputs.aux.get("learned_epoch")
        if learned is None or not budget["starved"]:
            return None, info
        horizon = late_horizon(share)
        info["late_horizon_epochs"] = horizon
        return np.asarray(learned) > horizon, info

    def step_budget(self, inputs: SelectionInputs, ratio: float) -> dict[str, Any]:
        """The subset's optimizer steps at `ratio`: `subset_recorded_epochs` (`(1 − r)·E`, in epochs of the scoring
        run; `None` when the scores do not say `E`), `subset_steps` (counted with the run's steps per epoch, or as
        `kept rows × E / subset_batch_size` when that is given; `None` when unknown) and `starved` (at most one
        epoch's worth, or at most `STARVED_STEPS` steps)."""
        check = inputs.aux_info.get("self_check") or {}
        epochs = self.subset_epochs or check.get("planned_epochs") or check.get("recorded_epochs")
        if epochs is None:
            return {"subset_recorded_epochs": None, "subset_steps": None, "starved": False}
        share = (1.0 - ratio) * float(epochs)
        if self.subset_batch_size is not None:
            steps = share * inputs.num_samples / self.subset_batch_size  # kept rows × E / batch
        else:
            per_epoch = check.get("steps_per_epoch")
            steps = None if per_epoch is None else share * float(per_epoch)
        starved = share <= 1.0 + 1e-9 or (steps is not None and steps <= STARVED_STEPS + 1e-9)
        return {"subset_recorded_epochs": share, "subset_steps": steps, "starved": starved}

    def shape_log_weights(self, log_weight: np.ndarray, p_bar: np.ndarray, anchor: float, alpha: float, beta: float,
                          applies: bool, inputs: SelectionInputs, ratio: float) -> np.ndarray:
        """The Beta's log-weights of every row, before the score multiplies them: a hook for subclasses.

        Args:
            log_weight (`np.ndarray`): [`beta_log_density`] of every row's `P̄` (may be modified in place).
            p_bar (`np.ndarray`): The clamped `P̄` of every row.
            anchor (`float`): `μ*`, the mean `P̄` of the 10 highest-scoring rows not set aside.
            alpha (`float`): The Beta's `α_r` at this ratio.
            beta (`float`): The Beta's `β_r` at this ratio.
            applies (`bool`): Whether the hard cutoff applies (rows were set aside).
            inputs (`SelectionInputs`): The selection's inputs.
            ratio (`float`): The pruning ratio.

        Returns:
            `np.ndarray`: The log-weights; the library's selector returns `log_weight` unchanged (DUAL's density).
        """
        return log_weight

    def shape_weights(self, weights: np.ndarray, applies: bool, inputs: SelectionInputs,
                      ratio: float) -> np.ndarray:
        """The sampling weights `π` of every row before the set-aside rows are zeroed: a hook for subclasses (e.g.
        another weighting once the cutoff applies). The library's selector returns `weights` unchanged."""
        return weights

    def probabilities(self, weights: np.ndarray, count: int) -> np.ndarray:
        """Inclusion probabilities of systematic sampling under the `inclusion` option."""
        if self.inclusion == "successive":
            return successive_inclusion_probabilities(weights, count)
        return inclusion_probabilities(weights, count)

    def draw(self, rows: np.ndarray, weights: np.ndarray, p_bar: np.ndarray, count: int,
             rng: np.random.Generator, rho: float = 1.0, eligible: np.ndarray | None = None) -> np.ndarray:
        """`count` of `rows`. With a trust `ρ < 1` every row's inclusion probability (systematic) or draw probability
        (random) is `ρ` times the scores' plus `1 − ρ` times the uniform one: Kelley's shrinkage of a score of
        reliability `ρ` towards its mean (Kelley 1927), applied to the sampling design. `eligible` (a mask over all
        rows; the late-row rule's): the uniform part covers only those rows, unless they cannot fill `count` (then
        all of them, the others sharing the rest) — candidate C10,
        benchmarks/predeclared/2026-12-05_late_rows_in_mixture.md."""
        if count <= 0:
            return np.zeros(0, dtype=np.int64)
        w = weights[rows]
        uniform = uniform_design(len(rows), count, None if eligible is None else eligible[rows])
        if self.sampling == "systematic":
            probs = self.probabilities(w, count)
            if rho < 1.0:
                probs = rho * probs + (1.0 - rho) * uniform
            order = np.argsort(p_bar[rows], kind="stable")
            picked = systematic_sample(probs, order, rng.random())
            if len(picked) != count:  # floating-point edge: fix the count by the inclusion probabilities
                ranked = np.argsort(-(probs + 1e-9 * rng.random(len(probs))), kind="stable")
                picked = np.sort(ranked[:count]) if len(picked) > count else np.union1d(
                    picked, [i for i in ranked if i not in set(picked)][: count - len(picked)])
            return rows[np.asarray(picked, dtype=np.int64)]
        if (w > 0).sum() < count:
            # Rows with a zero score still get a tiny weight so the draw can always fill the budget.
            w = w + 1e-12 * max(w.max(), 1e-300)
        p = w / w.sum()
        if rho < 1.0:
            p = rho * p + (1.0 - rho) * uniform / count
        return rng.choice(rows, size=count, replace=False, p=p / p.sum())

    def class_plan(self, inputs: SelectionInputs, weights: np.ndarray, count: int,
                   rho: float, late_free: np.ndarray | None = None) -> tuple[dict | None, list, list]:
        """Per-class keep counts, or `None` when the draw may take all rows at once.

        The unstratified draw keeps `m_c = Σ_{i∈c} p_i` rows of class `c` in expectation (`p` its inclusion
        probabilities). A class's target is `t_c = ρ·m_c + (1 − ρ)·count·n_c/n` (the mixture the rows' probabilities
        follow under a trust `ρ`). With `ρ < 1`, or when some `t_c` falls below the class's floor
        `f_c = ⌊class_floor · count · n_c / n⌋`, every class is drawn on its own and keeps
        `f_c + (count − Σ f)·t_c / Σ t` rows (largest remainders, at most its size): its floor plus its part of the
        rest, so with `class_floor=0.5` about half-way between its proportional share and `t_c` (this is the rule
        every benchmark row of the default was measured with). Returns the counts, the classes whose target fell
        below their floor and the classes the late-row guard (below) planned up.

        `late_free` (the weights without the late-row rule, given when the rule set rows aside): the rule may not
        lower a class's target by more than half a row below `min(count·n_c/n, its target under late_free)`; such a
        class gets that guard as its target (and every class is drawn on its own). A class the run learned only late
        (a barely learned minority) is then planned as random, or as the selection without the rule, would plan it,
        whichever keeps fewer (candidate C7, benchmarks/predeclared/2026-12-04_late_share_guard.md).
        """
        floor_on = self.class_floor > 0 and inputs.class_quota != "none"
        classes, sizes = np.unique(inputs.labels, return_counts=True)
        share = count * sizes / inputs.num_samples

        def targets(w: np.ndarray) -> np.ndarray:
            probs = self.probabilities(w, count)
            return rho * np.array([probs[inputs.labels == c].sum() for c in classes]) + (1.0 - rho) * share

        expected = targets(weights)
        guarded = np.zeros(len(classes), dtype=bool)
        if late_free is not None:
            guard = np.minimum(share, targets(late_free))
            guarded = expected < guard - 0.5
            expected = np.where(guarded, guard, expected)
        guarded_classes = [int(c) for c in classes[guarded]]
        if not floor_on and rho >= 1.0 and not guarded.any():
            return None, [], guarded_classes
        floors = np.zeros(len(classes), dtype=np.int64)
        if floor_on:
            floors = np.minimum(np.floor(self.class_floor * share).astype(np.int64), sizes)
        lifted = classes[expected < floors - 1e-9]
        if not len(lifted) and rho >= 1.0 and not guarded.any():
            return None, [], guarded_classes
        alloc = allocate(sizes, count, floors, weights=np.maximum(expected, 1e-12))
        return {int(c): int(a) for c, a in zip(classes, alloc)}, [int(c) for c in lifted], guarded_classes

    def select(self, inputs: SelectionInputs, budget: Budget) -> SelectionOutput:
        n = inputs.num_samples
        ratio = 1.0 - budget.n_keep / n
        weights, p_bar, params = self.weights(inputs, ratio)
        late_free = params.pop("late_free_weights", None)
        late = params.pop("late_rows_mask", None)
        starved = self.step_budget(inputs, ratio)["starved"]
        rho, trust_reason, trust_facts = self.trust(inputs, starved)
        # The late rows are out of the uniform part too (C10) while the scores are followed at all: scores not
        # followed (trust 0: a short or unmeasurable record, or no agreement) give a class-stratified random sample of
        # every row, `learned_epoch` being read from the same record.
        eligible = None if late is None or rho <= 0.0 else ~late
        if late is not None and rho <= 0.0:
            params["late_set_aside"] = 0  # every row is drawn at random's rate: none was set aside
        rng = np.random.default_rng(inputs.seed)
        proportional = inputs.class_quota == "proportional" or (
            self.hard_cutoff == "regime" and params["cutoff_applied"] and inputs.class_quota is None)
        targets = class_targets(inputs, budget.n_keep, proportional)
        lifted: list[int] = []
        params["late_guarded"] = []
        if targets is None and inputs.min_per_class <= 0:
            targets, lifted, params["late_guarded"] = self.class_plan(inputs, weights, budget.n_keep, rho, late_free)
            proportional = targets is not None  # the per-class targets cover the whole budget
        if lifted:
            logger.warning(
                f"hf_prune: dual_beta would keep less than {self.class_floor:g} of their share of class(es) {lifted}; "
                "they keep that floor and every class is drawn on its own (pass `class_floor=0` to draw without it)."
            )
        if rho < 1.0:
            logger.info(f"hf_prune: dual_beta trusts its scores at {rho:.2f} ({trust_reason}).")
        if params["late_guarded"]:
            logger.info(f"hf_prune: dual_beta plans class(es) {params['late_guarded']} at their share (or their count "
                        "without the late-row rule, if less) before the class floor's split: the rule would have "
                        "planned them far fewer rows.")
        if params["late_set_aside"]:
            logger.info(f"hf_prune: dual_beta gives no weight to the {params['late_set_aside']} rows learned only after "
                        f"the scoring run's epoch {params['late_horizon_epochs']}: the subset gets "
                        f"{params['subset_recorded_epochs']:.2f} of its epochs in optimizer steps"
                        + ("" if params["subset_steps"] is None else f" (about {params['subset_steps']:.0f} steps)")
                        + " (late_rows='auto'; pass late_rows='keep' to keep them eligible).")
        if targets is None:
            kept = self.draw(np.arange(n), weights, p_bar, budget.n_keep, rng, rho, eligible)
        else:
            # Per-class draws: the whole budget (proportional quota, floor or trust targets) or only the
            # `min_per_class` floors, the rest then being drawn from all remaining rows.
            kept = np.concatenate([
                self.draw(np.flatnonzero(inputs.labels == label), weights, p_bar, count, rng, rho, eligible)
                for label, count in targets.items()
            ])
            if not proportional:
                remaining = np.setdiff1d(np.arange(n), kept)
                kept = np.concatenate([kept, self.draw(remaining, weights, p_bar, budget.n_keep - len(kept), rng,
                                                       rho, eligible)])
        source, signal = regime_signal(inputs, params["memorization_gap"], self.regime_from)
        return SelectionOutput(kept=kept, info={**params, "c_d": self.c_d, "sampling": self.sampling,
                                                "inclusion": self.inclusion, "hard_cutoff": self.hard_cutoff,
                                                "regime_signal": source, "regime_value": signal,
                                                "class_quota": "proportional" if proportional else "none",
                                                "class_floor": 0.0 if inputs.class_quota == "none" else
                                                self.class_floor, "floor_lifted": lifted,
                                                "trust": rho, "trust_reason": trust_reason, **trust_facts,
                                                "step_starved": starved,
                                                "self_check": dict(inputs.aux_info.get("self_check") or {})})
