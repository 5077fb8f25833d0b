"""True counterfactual training: replay a recorded SGD/Adam run with one sample's loss weight set to 0.

This is the ground truth SGD-Influence estimates, used by the test suite and `scripts/influence_accuracy.py`, and
available to check the estimate on your own (small) model. The replay feeds the recorded batches in the recorded order with the recorded learning rates, per-sample loss
weights (the same denominators) and clipping coefficients, through a fresh `torch.optim` optimizer of the recorded
kind. Without removal it reproduces the Trainer's run; with `removed=j` it gives `θ_T^{−j}`, the ground truth that
SGD-Influence estimates.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from ..tracking.record import TrainingRecord


def _optimizer(model: torch.nn.Module, head: torch.nn.Linear, record: TrainingRecord):
    description = record.optimizer
    weight_group, bias_group = description["weight_group"], description["bias_group"]
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if (name.endswith("bias") or param.dim() == 1) else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": weight_group["weight_decay"]},
        {"params": no_decay, "weight_decay": bias_group["weight_decay"]},
    ]
    kind = description["type"]
    if kind == "SGD":
        return torch.optim.SGD(
            groups, lr=1.0, momentum=weight_group.get("momentum", 0.0), dampening=weight_group.get("dampening", 0.0),
            nesterov=weight_group.get("nesterov", False),
        )
    cls = torch.optim.AdamW if kind == "AdamW" else torch.optim.Adam
    return cls(groups, lr=1.0, betas=tuple(weight_group["betas"]), eps=weight_group["eps"])


def replay(
    model: torch.nn.Module,
    head: str,
    inputs: dict[str, torch.Tensor],
    record: TrainingRecord,
    removed: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> dict[str, torch.Tensor]:
    """Re-run the recorded training from `model`'s current (initial) weights; return the final state dict.

    Args:
        model: The model at initialisation (copied, not modified).
        head: Dotted name of the head module (unused except for grouping sanity).
        inputs: Model inputs for *all* rows, indexed by source index (e.g. `{"x": X}`), without labels.
        record: The record of the original run.
        removed: Source index whose loss weight is set to 0 at every step, or None.
    """
    model = copy.deepcopy(model).to(dtype)
    model.train()
    optimizer = _optimizer(model, getattr(model, head.split(".")[0]), record)
    occ = record.occurrences
    labels_all = torch.tensor(np.array(record.labels))
    for batch in record.iter_steps():
        if batch.skipped:
            continue
        for group in optimizer.param_groups:
            group["lr"] = float(batch.lr[0]) if group is optimizer.param_groups[0] else float(batch.lr[1])
        optimizer.zero_grad()
        index = torch.as_tensor(batch.index)
        weights = torch.as_tensor(batch.weight, dtype=dtype)
        if removed is not None:
            weights = torch.where(index == removed, torch.zeros_like(weights), weights)
        lo = int(np.searchsorted(np.asarray(occ["step"]), batch.step))
        micro = torch.as_tensor(np.asarray(occ["microbatch"][lo : lo + len(index)]))
        total = 0.0
        for m in torch.unique(micro):
            rows = micro == m
            feed = {k: v[index[rows]].to(dtype) if v.is_floating_point() else v[index[rows]] for k, v in inputs.items()}
            out = model(**feed)
            logits = out["logits"] if isinstance(out, dict) else out.logits
            loss = torch.nn.functional.cross_entropy(logits, labels_all[index[rows]], reduction="none")
            total = total + (weights[rows] * loss).sum()
        total.backward()
        if batch.clip != 1.0:
            for param in model.parameters():
                if param.grad is not None:
                    param.grad.mul_(batch.clip)
        optimizer.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def head_vector(state: dict[str, torch.Tensor], head: str) -> np.ndarray:
    """The head's parameters flattened as `[W | b]` rows (C, D), the order of `exact_layout_to_head`."""
    weight = state[f"{head}.weight"].double().numpy()
    bias = state.get(f"{head}.bias")
    if bias is not None:
        weight = np.concatenate([weight, bias.double().numpy()[:, None]], axis=1)
    return weight.reshape(-1)


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-a between two score vectors (O(n²), fine for a few hundred samples)."""
    a, b = np.asarray(a), np.asarray(b)
    sa = np.sign(a[:, None] - a[None, :])
    sb = np.sign(b[:, None] - b[None, :])
    n = len(a)
    return float((sa * sb).sum() / (n * (n - 1)))
