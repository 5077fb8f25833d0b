"""`adaptive`: a ratio-adaptive difficulty prior (DUAL's Beta) with SGD-Influence herding inside each class.

Measured as a default candidate and not chosen: on the Fashion-MNIST 20k study (`scripts/benchmark.py --task
fmnist20k`) it matched or trailed `dual_beta` with systematic sampling (prior budget: 89.72 / 89.13 / 88.06 / 81.32
against 89.55 / 89.39 / 88.37 / 81.58 at ratios 0.3 / 0.5 / 0.7 / 0.9) at over 100× the selection time (3.5 s against 0.02 s). Steps:

1. inclusion probabilities `p_i ∝ BetaPDF(P̄_i; α_r, β_r) · DUAL_i` (DUAL's ratio-adaptive prior: hard rows at low
   pruning ratios, easier rows as the budget shrinks), capped at 1 and summing to `n_keep`;
2. a per-class budget: `proportional` (every class its share) or `prior` (`round(Σ_{i∈c} p_i)`, the allocation the
   prior implies);
3. inside each class a candidate pool of about `pool_factor × budget` rows drawn by systematic sampling along `P̄`
   with inclusion ∝ `p`, then kernel herding in influence space: from the pool, keep the rows whose summed influence
   best matches the pool's prior-weighted mean (`min ‖Σ_K (s_i − μ)‖`, greedy + swaps). The pool carries the
   difficulty profile; herding makes the kept rows representative of the class's influence distribution instead of
   an arbitrary draw.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidArgumentError
from .base import Budget, SelectionInputs, SelectionOutput, allocate, register_selector
from .sampling import DualBetaSelector, systematic_sample
from .vector import greedy_pick, refine_swaps


@register_selector
class AdaptiveSelector(DualBetaSelector):
    """`adaptive`: DUAL-Beta prior + class budgets + SGD-Influence herding (needs the `dual_influence` score).

    Options: `c_d` (Beta schedule, default 4), `pool_factor` (candidate pool / budget, default 2.0; 1.0 disables
    herding and gives systematic DUAL-Beta sampling), `class_budget` (`"proportional"` or `"prior"`), and the
    `dual_beta` options that shape the weights and the inclusion probabilities (`hard_cutoff`, `hard_side`,
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
