"""Score-sorting selectors: `topk` and `random`."""

from __future__ import annotations

import numpy as np

from .base import Budget, SelectionInputs, SelectionOutput, Selector, class_targets, register_selector, tie_break_order


def keep_top(values: np.ndarray, inputs: SelectionInputs, n_keep: int, proportional: bool, seed: int) -> np.ndarray:
    """Keep the `n_keep` highest `values`, globally or per class, honouring `inputs.min_per_class`.

    Ties are broken by a seeded random permutation so that integer scores (forgetting counts) do not favour low
    indices.
    """
    targets = class_targets(inputs, n_keep, proportional)
    order = tie_break_order(values, seed)
    if targets is None:
        return order[:n_keep]
    labels = inputs.labels[order]
    chosen = []
    for label, target in targets.items():
        chosen.append(order[labels == label][:target])
    kept = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
    if proportional:
        return kept
    # Floors only: fill the remaining budget globally from the best rows not yet kept.
    taken = np.zeros(len(values), dtype=bool)
    taken[kept] = True
    rest = order[~taken[order]][: n_keep - len(kept)]
    return np.concatenate([kept, rest])


@register_selector
class TopKSelector(Selector):
    """`topk`: keep the rows with the highest score (the papers' "keep top" rule).

    With `class_quota="proportional"` every class keeps its share (largest-remainder rounding), else the ranking is
    global (default, as in the papers). `min_per_class` floors are honoured in both cases.
    """

    name = "topk"

    def select(self, inputs: SelectionInputs, budget: Budget) -> SelectionOutput:
        proportional = inputs.class_quota == "proportional"
        kept = keep_top(inputs.scores, inputs, budget.n_keep, proportional, inputs.seed)
        return SelectionOutput(kept=kept, info={"class_quota": "proportional" if proportional else "none"})


@register_selector
class RandomSelector(Selector):
    """`random`: a uniform random subset (seeded), class-stratified by default (`class_quota="proportional"`).

    The baseline every pruning method is compared against. With `class_quota="none"` it is plain uniform sampling.
    """

    name = "random"
    needs = "none"

    def select(self, inputs: SelectionInputs, budget: Budget) -> SelectionOutput:
        proportional = inputs.class_quota in (None, "proportional")
        rng = np.random.default_rng(inputs.seed)
        kept = keep_top(rng.random(inputs.num_samples), inputs, budget.n_keep, proportional, inputs.seed + 1)
        return SelectionOutput(kept=kept, info={"class_quota": "proportional" if proportional else "none"})
