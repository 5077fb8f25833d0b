"""`tracin_cp`: TracIn-CP (Pruthi et al. 2020, arXiv 2002.08853) restricted to the classification head, in closed form.

TracIn-CP sums, over checkpoints `θ_k` weighted by their learning rate `η_k`, dot products of per-sample loss
gradients. On the head `[W | b]` the gradient of the cross-entropy of row `i` is the outer product
`r_i ⊗ h̃_i`, with `r_i = softmax(z_i) − e_{y_i}` and `h̃_i = [h_i; 1]` (`h_i` alone when the head has no bias), so:

* self-influence `Σ_k η_k ‖∇ℓ(z_i; θ_k)‖² = Σ_k η_k ‖r_ik‖² (‖h_ik‖² + 1)`;
* influence on the summed loss of an evaluation set `V`:
  `Σ_k η_k ⟨∇ℓ(z_i; θ_k), Σ_{z'∈V} ∇ℓ(z'; θ_k)⟩ = Σ_k η_k r_ikᵀ G_k h̃_ik` with `G_k = Σ_{z'∈V} r'_k h̃'_kᵀ`.

Nothing is differentiated: every term comes from the logits and head inputs stored in the record.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..checkpoints import CHECKPOINT_QUERY
from ..errors import InvalidArgumentError, ScoreNotComputableError
from ..tracking.record import TrainingRecord, softmax
from .base import ScoreFunction, ScoreOutput, register_score


_TARGETS = ("self", "eval")
_CHUNK = 1 << 16


def _residuals(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    residual = softmax(np.asarray(logits, dtype=np.float64))
    residual[np.arange(len(labels)), labels] -= 1.0
    return residual


def _step_rates(record: TrainingRecord) -> tuple[np.ndarray, np.ndarray]:
    """Sorted step ids and the learning rates `(weight, bias)` actually applied at each (0 for a skipped step)."""
    steps = np.asarray(record.steps["step"], dtype=np.int64)
    rates = np.asarray(record.steps["lr"], dtype=np.float64) * (~np.asarray(record.steps["skipped"], dtype=bool))[:, None]
    order = np.argsort(steps, kind="stable")
    return steps[order], rates[order]


def eval_gradients(record: TrainingRecord) -> np.ndarray | None:
    """`G_k = Σ_{z'∈V} r'_k h̃'_kᵀ` per checkpoint `(K, C, D̃)`, from a checkpoint record's eval set; `None` without one."""
    query = record.auxiliary(CHECKPOINT_QUERY)
    if query is None:
        return None
    labels = np.asarray(query["labels"], dtype=np.int64)
    gradients = []
    for k in range(query["logits"].shape[0]):
        residual = _residuals(query["logits"][k], labels)
        features = np.asarray(query["features"][k], dtype=np.float64)
        if record.has_bias:
            features = np.concatenate([features, np.ones((len(features), 1))], axis=1)
        gradients.append(residual.T @ features)
    return np.stack(gradients)


@register_score
class TracInCPScore(ScoreFunction):
    """`tracin_cp` (Pruthi et al. 2020, arXiv 2002.08853): checkpoint-summed head-gradient influence, in closed form.

    Each recorded epoch is a checkpoint: on a record made by `HFPruner.from_checkpoints` every row's forward pass at
    checkpoint `k`, weighted by the checkpoint's `η_k`; on a `PruneTrainer` record every row's training forward pass
    of the epoch (its first presentation), weighted by the learning rate of the step it was trained in (so the
    self-influence is TracIn's "ideal" sum over the row's own steps). The head's weight and bias use the learning rate
    of their own parameter group.

    Options:
        target (`str`, defaults to `"self"`):
            * `"self"`: self-influence `Σ_k η_k ‖r_ik‖² (‖h_ik‖² + 1)` (the `+1` only with a bias). High for rows the
              checkpoints keep a large gradient on: hard, atypical or mislabelled rows (TracIn's mislabel detector),
              kept first like `el2n` and `grand`. With an evaluation set recorded, its influence is added as the
              extra column `tracin_cp_eval`.
            * `"eval"`: influence on the summed loss of the evaluation set, `Σ_k η_k ⟨∇ℓ(z_i; θ_k), Σ_{z'} ∇ℓ(z';
              θ_k)⟩`. Positive: a gradient step on the row lowers the evaluation loss at these checkpoints (a
              proponent, kept first); negative: it raises it. Needs the evaluation set's head outputs at every
              checkpoint, which records made by `HFPruner.from_checkpoints(..., eval_dataset=...)` hold.

    Needs the head input (`features`). Costs one pass over the record's epochs, `O(E · n · (C + D))`, and for the
    evaluation influence `O(K · m · C · D)` for `m` evaluation rows.
    """

    name = "tracin_cp"
    requires = frozenset({"features"})
    provides_aux = ()

    def __init__(self, target: str = "self", **options: Any):
        super().__init__(**options)
        if target not in _TARGETS:
            raise InvalidArgumentError(f"Score `tracin_cp`: `target` must be 'self' or 'eval', got {target!r}.")
        self.target = target

    def options(self) -> dict[str, Any]:
        return {"target": self.target}

    def compute(self, record, context):
        gradients = eval_gradients(record)
        if self.target == "eval" and gradients is None:
            raise ScoreNotComputableError(
                "`tracin_cp` with `target='eval'` needs the evaluation set's head outputs at every checkpoint, and this "
                "record holds none (a PruneTrainer record stores them at the final model only). Make the record with "
                "`HFPruner.from_checkpoints(checkpoints, train_ds, eval_dataset=eval_ds)`, or use `target='self'`."
            )
        n, bias = record.num_samples, record.has_bias
        step_ids, rates = _step_rates(record)
        occ = record.occurrences
        self_influence = np.zeros(n)
        eval_influence = np.zeros(n) if gradients is not None else None
        epochs = record.epochs
        for epoch in epochs:
            rows, index = record.first_rows(int(epoch))
            if gradients is not None and int(epoch) >= len(gradients):
                raise ScoreNotComputableError(
                    f"The record's epoch {int(epoch)} has no evaluation-set pass ({len(gradients)} stored); the record "
                    "is inconsistent. Make it again with `HFPruner.from_checkpoints`."
                )
            for lo in range(0, len(rows), _CHUNK):
                chunk, target = rows[lo : lo + _CHUNK], index[lo : lo + _CHUNK]
                residual = _residuals(occ["logits"][chunk], np.asarray(occ["label"][chunk]))
                features = np.asarray(occ["features"][chunk], dtype=np.float64)
                rate = rates[np.searchsorted(step_ids, np.asarray(occ["step"][chunk], dtype=np.int64))]
                residual_norm = (residual * residual).sum(axis=1)
                self_influence[target] += residual_norm * (
                    rate[:, 0] * (features * features).sum(axis=1) + (rate[:, 1] if bias else 0.0)
                )
                if eval_influence is not None:
                    weight_part = np.einsum("ic,cd,id->i", residual, gradients[int(epoch)][:, : record.feature_dim],
                                            features)
                    bias_part = residual @ gradients[int(epoch)][:, -1] if bias else 0.0
                    eval_influence[target] += rate[:, 0] * weight_part + rate[:, 1] * bias_part
        info = {"target": self.target, "epochs": len(epochs), "eval": eval_influence is not None}
        if self.target == "eval":
            return ScoreOutput(values=eval_influence, extra={"tracin_cp_self": self_influence}, info=info)
        extra = {"tracin_cp_eval": eval_influence} if eval_influence is not None else {}
        return ScoreOutput(values=self_influence, extra=extra, info=info)
