"""Selectors that only the benchmark's historical variants use (`scripts/benchmark.py`'s `METHODS`).

They were library options once and were measured as default candidates; they stay here so their rows can be re-made.
Importing this module registers them:

- `dual_beta_lab`: `dual_beta` with the options `hard_side`, `hard_floor` and `after_cutoff`;
- `adaptive`: a DUAL-Beta prior with SGD-Influence herding inside each class (reads the `dual_influence` score);
- `dual_beta_horizon` and `dual_beta_horizon_only` (candidates C2 and C3, both rejected: benchmarks/predeclared/
  2026-12-04_learnability_horizon.md): the default that sets aside the rows beyond the subset's learnability horizon
  (they read the `dual_horizon` score: `dual` plus every row's `learned_epoch`).
- Candidate C4 (benchmarks/predeclared/2026-12-04_starved_horizon.md), C3 only where the subset gets at most one
  recorded epoch of optimizer steps, was measured here and is now the library default (`dual_beta`'s
  `late_rows="auto"`); `tests/test_lab_selectors.py` checks it against C3 and C1 weight for weight.

    import sys; sys.path.insert(0, "scripts")
    import lab_selectors  # noqa: F401  (registers the selectors)
    HFPruner(trainer, method="dual", selector="dual_beta_lab", hard_side="tempered")
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hf_prune.errors import InvalidArgumentError
from hf_prune.scores.base import ScoreOutput, register_score
from hf_prune.scores.dynamics import DUALScore
from hf_prune.scores.influence import SGDInfluenceScore
from hf_prune.selection.base import Budget, SelectionInputs, SelectionOutput, allocate, register_selector
from hf_prune.selection.sampling import (
    DualBetaSelector,
    beta_log_density,
    late_horizon,
    systematic_sample,
)
from hf_prune.selection.vector import greedy_pick, refine_swaps


@register_selector
class LabDualBetaSelector(DualBetaSelector):
    """`dual_beta_lab`: `dual_beta` (every option of it, same defaults) plus the historical variants' options.

    Options (besides those of `dual_beta`):
        after_cutoff (`str`, defaults to `"beta"`): how the other rows are sampled once the flagged rows are set
            aside. `"beta"`: DUAL's weights `π`. `"uniform"`: every other row weighs the same (with
            `sampling="systematic"` the kept rows are then spread evenly along `P̄`, easy to hard), for runs where
            the scores are not trusted beyond flagging what was memorised. No effect when the cutoff does not apply.
        hard_side (`str`, defaults to `"beta"`): the Beta weight of rows harder than the anchor (`P̄ < μ*`).
            `"beta"`: the density itself (the reference code), which, with `α + β = 16`, all but removes the
            hardest rows already at moderate ratios (at `r = 0.5` and `μ* = 0.48`, a row of `P̄ = 0.05` weighs
            1e-6 of one at the mode). `"flat"`: such rows keep the density's value at the anchor, so below the
            hardness of the highest-scoring rows the score alone ranks them, as DUAL's "keep the top scores" does;
            the Beta still moves the mass to easy rows as the ratio grows. `"tempered"`: between the two on DUAL's
            own ratio schedule: below the anchor the log-density's drop from its value at the anchor is scaled by
            `r^{c_D}` (the factor by which `β_r` leaves its `r = 0` value), so the hard side is flat at small ratios
            (0.06 of the drop at `r = 0.5`) and the reference density at large ones (0.24 at 0.7, 0.66 at 0.9).
            `"flat"` and `"tempered"` act only when the hard cutoff does not apply: when it does, the cutoff decides
            how many of the hardest rows stay, and the Beta keeps its shape.
        hard_floor (`str`, defaults to `"none"`): which of the rows harder than the anchor `"flat"` and `"tempered"`
            lift. `"none"`: all of them. `"chance"`: only those whose `P̄` is at least chance (`1 / num_classes`);
            a row whose own label the run gave, on average over training, less probability than a uniform guess
            (the usual sign of a label error or an ambiguous input) keeps the reference density. No effect with
            `hard_side="beta"`, nor where the hard cutoff applies.

    With the three at their defaults it selects exactly as `dual_beta` with the same other options. The selection's
    info adds `hard_side` (the one used: `"beta"` where the cutoff applies) and `hard_floor`.
    """

    name = "dual_beta_lab"

    def __init__(self, after_cutoff: str = "beta", hard_side: str = "beta", hard_floor: str = "none",
                 **options: Any):
        super().__init__(**options)
        if after_cutoff not in ("beta", "uniform"):
            raise InvalidArgumentError(f"`after_cutoff` must be 'beta' or 'uniform', got {after_cutoff!r}.")
        if hard_side not in ("beta", "flat", "tempered"):
            raise InvalidArgumentError(f"`hard_side` must be 'beta', 'flat' or 'tempered', got {hard_side!r}.")
        if hard_floor not in ("none", "chance"):
            raise InvalidArgumentError(f"`hard_floor` must be 'none' or 'chance', got {hard_floor!r}.")
        self.after_cutoff = after_cutoff
        self.hard_side = hard_side
        self.hard_floor = hard_floor

    def options(self):
        return {**super().options(), "after_cutoff": self.after_cutoff, "hard_side": self.hard_side,
                "hard_floor": self.hard_floor}

    def effective_hard_side(self, applies: bool) -> str:
        """The hard side in use: `"beta"` where the hard cutoff applies, else the `hard_side` option."""
        return "beta" if applies else self.hard_side

    def shape_log_weights(self, log_weight, p_bar, anchor, alpha, beta, applies, inputs, ratio):
        hard_side = self.effective_hard_side(applies)
        if hard_side != "beta":
            at_anchor = beta_log_density(anchor, alpha, beta)
            keep = 0.0 if hard_side == "flat" else ratio**self.c_d
            harder = p_bar < anchor
            if self.hard_floor == "chance":
                harder &= p_bar >= 1.0 / inputs.class_count
            log_weight[harder] = at_anchor + keep * (log_weight[harder] - at_anchor)
        return log_weight

    def shape_weights(self, weights, applies, inputs, ratio):
        if applies and self.after_cutoff == "uniform":
            return np.ones(len(weights))
        return weights

    def weights(self, inputs: SelectionInputs, ratio: float) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        weights, p_bar, params = super().weights(inputs, ratio)
        return weights, p_bar, {**params, "hard_side": self.effective_hard_side(params["cutoff_applied"]),
                                "hard_floor": self.hard_floor}


@register_selector
class AdaptiveSelector(LabDualBetaSelector):
    """`adaptive`: a ratio-adaptive difficulty prior (DUAL's Beta) with SGD-Influence herding inside each class.

    Measured as a default candidate and not chosen (its rows: `benchmarks/README.md`). Needs the `dual_influence`
    score (the DUAL score and the SGD-Influence vectors from one record). Steps:

    1. inclusion probabilities `p_i ∝ BetaPDF(P̄_i; α_r, β_r) · DUAL_i` (DUAL's ratio-adaptive prior: hard rows at low
       pruning ratios, easier rows as the budget shrinks), capped at 1 and summing to `n_keep`;
    2. a per-class budget: `proportional` (every class its share) or `prior` (`round(Σ_{i∈c} p_i)`, the allocation
       the prior implies);
    3. inside each class a candidate pool of about `pool_factor × budget` rows drawn by systematic sampling along `P̄`
       with inclusion ∝ `p`, then kernel herding in influence space: from the pool, keep the rows whose summed
       influence best matches the pool's prior-weighted mean (`min ‖Σ_K (s_i − μ)‖`, greedy + swaps). The pool
       carries the difficulty profile; herding makes the kept rows representative of the class's influence
       distribution instead of an arbitrary draw.

    Options: `c_d` (Beta schedule, default 4), `pool_factor` (candidate pool / budget, default 2.0; 1.0 disables
    herding and gives systematic DUAL-Beta sampling), `class_budget` (`"proportional"` or `"prior"`), and the
    `dual_beta_lab` options that shape the weights and the inclusion probabilities (`hard_cutoff`, `hard_side`,
    `inclusion`, …); it always samples systematically.
    """

    name = "adaptive"
    needs = "vector"

    def __init__(self, c_d: float = 4.0, pool_factor: float = 2.0, class_budget: str = "proportional",
                 **options: Any):
        super().__init__(c_d=c_d, sampling="systematic", **options)
        if isinstance(pool_factor, bool) or not isinstance(pool_factor, (int, float)) or pool_factor < 1.0:
            raise InvalidArgumentError(f"`pool_factor` must be a number >= 1, got {pool_factor!r}.")
        if class_budget not in ("proportional", "prior"):
            raise InvalidArgumentError(f"`class_budget` must be 'proportional' or 'prior', got {class_budget!r}.")
        self.pool_factor = float(pool_factor)
        self.class_budget = class_budget

    def options(self):
        # The DUAL-Beta options it inherits (weights and inclusion probabilities) too; it always samples systematically.
        inherited = {k: v for k, v in super().options().items() if k != "sampling"}
        return {**inherited, "pool_factor": self.pool_factor, "class_budget": self.class_budget}

    def select(self, inputs: SelectionInputs, budget: Budget) -> SelectionOutput:
        n = inputs.num_samples
        ratio = 1.0 - budget.n_keep / n
        weights, p_bar, params = self.weights(inputs, ratio)
        probs = self.probabilities(weights, budget.n_keep)
        classes, sizes = np.unique(inputs.labels, return_counts=True)
        floors = np.minimum(np.full(len(classes), inputs.min_per_class), sizes)
        if self.class_budget == "proportional":
            targets = allocate(sizes, budget.n_keep, floors)
        else:
            mass = np.array([probs[inputs.labels == c].sum() for c in classes])
            targets = allocate(sizes, budget.n_keep, floors, weights=np.maximum(mass, 1e-12))
        rng = np.random.default_rng(inputs.seed)
        vectors = inputs.vectors
        kept, herded = [], 0
        for label, target in zip(classes, targets):
            rows = np.flatnonzero(inputs.labels == label)
            if target <= 0:
                continue
            if target >= len(rows):
                kept.append(rows)
                continue
            pool_size = min(len(rows), int(np.ceil(self.pool_factor * target)))
            pool_probs = self.probabilities(weights[rows], pool_size)
            order = np.argsort(p_bar[rows], kind="stable")
            pool = rows[systematic_sample(pool_probs, order, rng.random())]
            if len(pool) <= target:
                kept.append(pool)
                continue
            Y = np.asarray(vectors[pool], dtype=np.float64)
            prior = probs[pool] / max(probs[pool].sum(), 1e-300)
            Y = Y - (prior[:, None] * Y).sum(axis=0, keepdims=True)
            group_labels = np.zeros(len(pool), dtype=np.int64)
            picked = greedy_pick(Y, target, group_labels)
            picked, _ = refine_swaps(Y, picked, group_labels)
            kept.append(pool[picked])
            herded += 1
        return SelectionOutput(
            kept=np.concatenate(kept),
            info={**params, "c_d": self.c_d, "pool_factor": self.pool_factor, "class_budget": self.class_budget,
                  "herded_classes": herded, "per_class": dict(zip(classes.tolist(), targets.tolist()))},
        )


@register_score
class DualInfluenceScore(SGDInfluenceScore):
    """`dual_influence`: the DUAL score and SGD-Influence vectors from the same record, for the `adaptive` selector.

    Values are the DUAL score (high = keep) with its `p_mean`; vectors are the `sgd_influence` vectors (same options:
    `sketch_size`, `hessian`, `window_epochs`, `precision`); DUAL's `epochs` and `window` options are accepted too.
    The influence norms and the eval-loss influence are added as the extra columns `sgd_influence` and
    `sgd_influence_eval`.
    """

    name = "dual_influence"
    default_selector = "adaptive"
    provides_aux = ("eval_vectors", *DUALScore.provides_aux)  # the influence score's and the DUAL score's

    def __init__(self, epochs: int | None = None, window: int | None = None, **options: Any):
        from hf_prune.scores.dynamics import DUALScore

        self.dual = DUALScore(epochs=epochs, window=window)
        super().__init__(**options)

    def options(self):
        return {**super().options(), **self.dual.options()}

    def compute(self, record, context):
        influence = super().compute(record, context)
        dual = self.dual(record, context)
        return ScoreOutput(
            values=dual.values,
            vectors=influence.vectors,
            aux={**influence.aux, **dual.aux},
            extra={"sgd_influence": influence.values, **influence.extra},
            info={"dual": dual.info, "sgd_influence": influence.info},
        )


@register_score
class DualHorizonScore(DUALScore):
    """`dual_horizon`: the score C2–C4's rows were measured under: `dual` plus every row's learning epoch and the
    recorded epochs, which the library's `dual` score has carried since C4 became the default."""

    name = "dual_horizon"
    provides_aux = DUALScore.provides_aux


def beyond_horizon(inputs: SelectionInputs, ratio: float) -> tuple[np.ndarray | None, int | None]:
    """The rows the run learned for good only after `h = max(1, ⌈(1 − r)·E⌉)` of its `E` recorded epochs, and `h`;
    `(None, None)` when the scores carry no learning epochs (not the `dual_horizon` score)."""
    epochs = (inputs.aux_info.get("self_check") or {}).get("recorded_epochs")
    learned = inputs.aux.get("learned_epoch")
    if epochs is None or learned is None:
        return None, None
    horizon = late_horizon((1.0 - ratio) * epochs)
    return np.asarray(learned) > horizon, horizon


@register_selector
class HorizonDualBetaSelector(DualBetaSelector):
    """`dual_beta_horizon`: the library default (`dual_beta`, same options and defaults) that also sets aside the rows
    beyond the subset's learnability horizon.

    A subset of ratio `r` trained with the recorded recipe runs `(1 − r)·E` epochs' worth of the recorded run's
    optimizer steps. The rows that the full run had not learned for good within `h = max(1, ⌈(1 − r)·E⌉)` epochs
    (`learned_epoch > h`) are set aside like memorised rows (drawn only when the others cannot fill the budget), on
    top of the default's own cutoff.
    """

    name = "dual_beta_horizon"

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.needs_aux = (*self.needs_aux, "learned_epoch")

    def memorised(self, inputs: SelectionInputs, ratio: float) -> tuple[np.ndarray, float, bool]:
        flags, gap, applies = super().memorised(inputs, ratio)
        beyond, _ = beyond_horizon(inputs, ratio)
        if beyond is None:
            return flags, gap, applies
        union = flags | beyond
        if union.all() or not beyond.any():
            return flags, gap, applies
        return union, gap, True


@register_selector
class HorizonOnlyDualBetaSelector(DualBetaSelector):
    """`dual_beta_horizon_only`: the library default (`dual_beta`) whose rows beyond the subset's learnability horizon
    (as in `dual_beta_horizon`) get no weight, with everything else (the anchor `μ*`, the memorisation cutoff, the
    class plan) computed exactly as without them."""

    name = "dual_beta_horizon_only"

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.needs_aux = (*self.needs_aux, "learned_epoch")

    def weights(self, inputs: SelectionInputs, ratio: float) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        weights, p_bar, params = super().weights(inputs, ratio)
        beyond, horizon = beyond_horizon(inputs, ratio)
        if beyond is None:
            return weights, p_bar, params
        if beyond.any() and (weights[~beyond] > 0).any():
            weights = np.where(beyond, 0.0, weights)
        return weights, p_bar, {**params, "horizon_epochs": horizon, "beyond_horizon": int(beyond.sum())}


@register_selector
class MixedLateDualBetaSelector(DualBetaSelector):
    """`dual_beta_mixed_late`: C8, the library default until C10 (benchmarks/predeclared/
    2026-12-05_late_rows_in_mixture.md) became it: in a step-starved subset's trust mixture `ρ'·p_i + (1 − ρ')·u_i`
    the late-row rule zeroes only the scores' part `p_i`; the uniform part `u_i = k_c/n_c` still covers the late
    rows."""

    name = "dual_beta_mixed_late"

    def draw(self, rows, weights, p_bar, count, rng, rho=1.0, eligible=None):
        return super().draw(rows, weights, p_bar, count, rng, rho, None)


@register_selector
class BudgetHorizonDualBetaSelector(MixedLateDualBetaSelector):
    """`dual_beta_budget_horizon`, candidate C6 (benchmarks/predeclared/2026-12-04_budget_horizon.md): the library
    default (C5) whose late-row horizon is the subset's step budget itself, `h = max(1, ⌊(1 − r)·E⌋)`, instead of
    C3's `max(1, ⌈(1 − r)·E⌉)`; when the rule fires and where it does not, everything else is the default's."""

    name = "dual_beta_budget_horizon"

    def late_rows(self, inputs: SelectionInputs, ratio: float) -> tuple[np.ndarray | None, dict[str, Any]]:
        late, info = super().late_rows(inputs, ratio)
        if late is None:
            return late, info
        horizon = max(1, int(np.floor(info["subset_recorded_epochs"] + 1e-9)))
        return np.asarray(inputs.aux["learned_epoch"]) > horizon, {**info, "late_horizon_epochs": horizon}


@register_selector
class UnguardedDualBetaSelector(MixedLateDualBetaSelector):
    """`dual_beta_unguarded`: C5, the library default until C7 (benchmarks/predeclared/2026-12-04_late_share_guard.md)
    became it: the late-row rule without the class guard (the class plan ignores the weights without the rule)."""

    name = "dual_beta_unguarded"

    def class_plan(self, inputs: SelectionInputs, weights: np.ndarray, count: int, rho: float,
                   late_free: np.ndarray | None = None) -> tuple[dict | None, list, list]:
        return super().class_plan(inputs, weights, count, rho, None)


