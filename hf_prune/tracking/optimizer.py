"""What the record needs to know about the optimizer, read for the head's parameters only.

The SGD-Influence recursion replays the head's updates, so the record stores the optimizer's hyper-parameters for the
head (once, in `record.json`) and, after every step, the head's learning rates, the optimizer's step count and, for
Adam-type optimizers, the head's first and second moments. These readers never change the optimizer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .head import HeadInfo


#: Optimizers whose head moments are recorded after every step (`PruneArguments.track_head_state="auto"`).
ADAM_TYPES = ("Adam", "AdamW")


def unwrap_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimizer inside `optimizer` (Accelerate's `AcceleratedOptimizer` wraps it in `.optimizer`)."""
    while isinstance(getattr(optimizer, "optimizer", None), torch.optim.Optimizer):
        optimizer = optimizer.optimizer
    return optimizer


def find_group(optimizer: torch.optim.Optimizer, param: torch.nn.Parameter | None) -> dict | None:
    """The parameter group of `optimizer` that holds `param`, or `None` (not trained, or no parameter)."""
    if param is None:
        return None
    for group in optimizer.param_groups:
        if any(p is param for p in group["params"]):
            return group
    return None


def _group_info(group: dict) -> dict[str, Any]:
    info = {"weight_decay": float(group.get("weight_decay", 0.0) or 0.0)}
    for key in ("momentum", "dampening", "eps"):
        if key in group:
            info[key] = float(group[key])
    for key in ("nesterov", "amsgrad", "maximize", "decoupled_weight_decay"):
        if key in group:
            info[key] = bool(group[key])
    if "betas" in group:
        info["betas"] = [float(b) for b in group["betas"]]
    return info


def describe_optimizer(optimizer: Any, head: HeadInfo) -> dict[str, Any]:
    """What the SGD-Influence recursion needs to know about the optimizer, for the head's parameters.

    Returns:
        `dict` with `type` (the optimizer's class name) and `head_trained`; when the head is trained, also
        `weight_group` and `bias_group` (weight decay, momentum, betas, ... of the groups holding the head's weight and
        bias) and `decoupled_weight_decay`.
    """
    optimizer = unwrap_optimizer(optimizer)
    kind = type(optimizer).__name__
    weight_group = find_group(optimizer, head.module.weight)
    bias_group = find_group(optimizer, head.module.bias) if head.has_bias else None
    description: dict[str, Any] = {"type": kind, "head_trained": weight_group is not None}
    if weight_group is None:
        return description
    description["weight_group"] = _group_info(weight_group)
    description["bias_group"] = _group_info(bias_group or weight_group)
    description["decoupled_weight_decay"] = kind == "AdamW" or bool(weight_group.get("decoupled_weight_decay", False))
    return description


def head_learning_rates(optimizer: torch.optim.Optimizer, head: HeadInfo) -> tuple[float, float]:
    """Current learning rates of the head's weight and bias (`(0, 0)` when the optimizer does not train the head)."""
    weight_group = find_group(optimizer, head.module.weight)
    if weight_group is None:
        return 0.0, 0.0
    bias_group = find_group(optimizer, head.module.bias) if head.has_bias else None
    return float(weight_group["lr"]), float((bias_group or weight_group)["lr"])


def optimizer_step_count(optimizer: torch.optim.Optimizer, head: HeadInfo) -> int:
    """The optimizer's own step counter for the head's weight (Adam's bias correction reads it); 0 if it keeps none."""
    if find_group(optimizer, head.module.weight) is None:
        return 0
    state = optimizer.state.get(head.module.weight, {})
    if "step" not in state:
        return 0
    return int(state["step"].item() if torch.is_tensor(state["step"]) else state["step"])


def head_moments(optimizer: torch.optim.Optimizer, head: HeadInfo) -> np.ndarray:
    """The head's second moment (AMSGrad's running maximum when kept) then first moment, each laid out as the head
    `[W | b]` row by row; zeros where the optimizer holds no such state yet."""

    def moment(param: torch.nn.Parameter, keys: tuple[str, ...]) -> torch.Tensor:
        state = optimizer.state.get(param, {})
        for key in keys:
            if key in state and state[key].numel():
                return state[key].detach().float()
        return torch.zeros_like(param, dtype=torch.float32)

    def head_layout(keys: tuple[str, ...]) -> torch.Tensor:
        value = moment(head.module.weight, keys)
        if head.has_bias:
            value = torch.cat([value, moment(head.module.bias, keys)[:, None]], dim=1)
        return value.reshape(-1)

    second = head_layout(("max_exp_avg_sq", "exp_avg_sq"))
    first = head_layout(("exp_avg",))
    return torch.cat([second, first]).cpu().numpy()
