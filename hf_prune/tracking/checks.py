"""Checks that the model, its head and the batches fit what the record assumes: single-label classification trained
with softmax cross-entropy, through one `nn.Linear` head whose output are the logits.

Each check raises [`UnsupportedModelError`] naming the setting to change, or returns a number for the caller to judge.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import UnsupportedModelError
from ..logging import get_logger
from .head import HeadInfo, HeadProbe


logger = get_logger(__name__)


def model_num_labels(model: Any) -> int | None:
    """`model.config.num_labels`, or `None` for a model without a config."""
    config = getattr(model, "config", None)
    return getattr(config, "num_labels", None) if config is not None else None


def check_classifier(num_outputs: int | None, what: str = "the model (`config.num_labels`)") -> None:
    """Refuse a model with a single output: transformers trains it as a regression (MSE), whatever the labels are."""
    if num_outputs is not None and num_outputs < 2:
        raise UnsupportedModelError(
            f"{what[0].upper()}{what[1:]} has {num_outputs} output: transformers treats `num_labels=1` as regression "
            "(mean-squared error on the label value), and hf_prune prunes single-label classification trained with "
            "softmax cross-entropy. Load the model with `num_labels=<number of classes>` (at least 2), e.g. "
            "`AutoModelForSequenceClassification.from_pretrained(name, num_labels=2)`."
        )


def check_problem_type(model, what: str = "The model's") -> None:
    """Refuse a model configured for regression or multi-label classification (`config.problem_type`)."""
    problem = getattr(getattr(model, "config", None), "problem_type", None)
    if problem in ("regression", "multi_label_classification"):
        raise UnsupportedModelError(
            f"{what} `config.problem_type` is {problem!r}; hf_prune supports single-label classification trained "
            "with softmax cross-entropy (`problem_type='single_label_classification'`)."
        )


def check_label_range(labels: np.ndarray | None, head: HeadInfo, label_column: str | None = None) -> None:
    """Refuse a training set whose largest label id has no output in the head."""
    if labels is not None and len(labels) and int(labels.max()) >= head.num_classes:
        column = f" (column `{label_column}`)" if label_column else ""
        raise UnsupportedModelError(
            f"The training set has label {int(labels.max())}{column} but the head `{head.name}` has only "
            f"{head.num_classes} outputs. Set `num_labels` of the model to at least {int(labels.max()) + 1}"
            + (", or, if the model is trained on another column, name it with "
               "`PruneArguments(label_column=...)`." if label_column else ".")
        )


def check_class_names(names: list[str] | None, head: HeadInfo, label_column: str) -> None:
    """Refuse a `ClassLabel` label column whose number of classes is not the head's number of outputs (a model made
    for other classes; `HFPruner.from_checkpoints` refuses the same)."""
    if names and len(names) != head.num_classes:
        raise UnsupportedModelError(
            f"The label column `{label_column}` is a `ClassLabel` with {len(names)} classes, but the head "
            f"`{head.name}` has {head.num_classes} outputs. Make the model for this label column "
            f"(`num_labels={len(names)}`, e.g. `AutoModelForSequenceClassification.from_pretrained(name, "
            f"num_labels={len(names)})`), or cast the column to a `ClassLabel` listing the head's "
            f"{head.num_classes} classes."
        )


def batch_labels(inputs: dict[str, Any], label_names: list[str] | None, label_column: str | None = None
                 ) -> torch.Tensor:
    """The class ids of a batch: the first of `label_names`, the training set's `label_column`, `labels` and
    `label` that holds a tensor, checked to be one integer per sample."""
    for name in [*(label_names or []), *([label_column] if label_column else []), "labels", "label"]:
        if name in inputs and isinstance(inputs[name], torch.Tensor):
            labels = inputs[name]
            if labels.dtype.is_floating_point or labels.dim() != 1:
                raise UnsupportedModelError(
                    f"Batch labels `{name}` have dtype {labels.dtype} and shape {tuple(labels.shape)}; hf_prune "
                    "supports single-label classification (one integer class id per sample, softmax "
                    "cross-entropy). Regression and multi-label targets are not supported."
                )
            return labels
    if label_column and label_column not in ("labels", "label"):
        raise UnsupportedModelError(
            f"The label column `{label_column}` is not in the training batch (keys: {sorted(inputs)}): the Trainer "
            "passes the model only the columns its `forward` accepts. Rename the column to `labels` "
            f"(`dataset.rename_column('{label_column}', 'labels')`), or give `forward` a `{label_column}` argument "
            f"(and set `label_names=['{label_column}']` for evaluation)."
        )
    raise UnsupportedModelError(
        f"No label tensor in the training batch (keys: {sorted(inputs)}); hf_prune needs the class ids to reach "
        "the model as `labels`. Check the collator and `label_names`."
    )


def check_head_logits(head: HeadInfo, probe: HeadProbe, outputs: Any) -> None:
    """Refuse a head whose captured output is not the model's `logits` (warn when the outputs hold no logits)."""
    logits = None
    if isinstance(outputs, dict) or hasattr(outputs, "keys"):
        logits = outputs.get("logits") if hasattr(outputs, "get") else None
    elif isinstance(outputs, (tuple, list)) and len(outputs) > 1:
        logits = outputs[1]
    captured = probe.logits
    if logits is None or not isinstance(logits, torch.Tensor):
        logger.warning(
            "hf_prune could not find `logits` in the model's outputs to confirm that the head "
            f"`{head.name}` produces them; the record assumes it does."
        )
        return
    if captured is None or captured.shape != logits.shape or not torch.allclose(
        captured.float(), logits.detach().float(), rtol=1e-3, atol=1e-4, equal_nan=True
    ):
        shape = None if captured is None else tuple(captured.shape)
        raise UnsupportedModelError(
            f"The module `{head.name}` (output shape {shape}) does not produce the model's logits "
            f"(shape {tuple(logits.shape)}): the logits are transformed after it, or another layer is the head. "
            "Set `PruneArguments(head_module=...)` to the nn.Linear whose output is returned as `logits`."
        )


def head_gradient_error(head: HeadInfo, expected: np.ndarray, clip: float) -> float:
    """Relative distance between the head's real gradient and `clip` times the sum of the recorded per-sample head
    gradients `Σ_i ∂L/∂z_i ⊗ [h_i; 1]` (`expected`, laid out `[W | b]`)."""
    actual = head.module.weight.grad.detach().float().cpu().numpy().astype(np.float64)
    if head.has_bias and head.module.bias.grad is not None:
        actual = np.concatenate([actual, head.module.bias.grad.detach().double().cpu().numpy()[:, None]], axis=1)
    denom = max(np.linalg.norm(expected) * clip, 1e-12)
    return float(np.linalg.norm(actual - clip * expected) / denom)
