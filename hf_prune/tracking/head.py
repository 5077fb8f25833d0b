"""Finding the classification head and probing it during the ordinary forward and backward passes.

The head is the `nn.Linear` whose output are the logits. Its input `h` (penultimate features), its output `z` and the
gradient of the optimised loss with respect to `z` are all that the closed-form head scores need: the per-sample
head gradient is `(∂L/∂z_i) ⊗ [h_i; 1]`, exactly, whatever the loss normalisation, gradient accumulation or
process count, because the gradient is read from the real backward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import HeadNotFoundError, UnsupportedModelError


# Attribute names under which HF task models keep their classification head, most specific first.
_HEAD_ATTRIBUTES = ("classifier", "score", "head", "classification_head", "fc", "logits", "output_layer", "cls")

_HOW_TO_POINT = (
    "Pass the dotted module name of the nn.Linear that produces the logits, e.g. "
    "`PruneArguments(head_module='classifier.out_proj')` (see `[name for name, _ in model.named_modules()]`)."
)


def _unwrap(model: nn.Module) -> nn.Module:
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    return model


def _last_linear(module: nn.Module) -> tuple[str, nn.Linear] | None:
    found = None
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Linear):
            found = (name, sub)
    return found


def head_fingerprint(module: nn.Module) -> str:
    """A hash of a head's parameters (weight and bias, as float32): which model a record's run ended with, so a pass
    at "the final model" is not made with another one (a trainer rebuilt with an untrained model)."""
    import hashlib

    digest = hashlib.sha1()
    for name, parameter in sorted(module.named_parameters()):
        digest.update(name.encode())
        digest.update(parameter.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass
class HeadInfo:
    """The resolved head: its dotted name in the model, the module, and its shape."""

    name: str
    module: nn.Linear

    @property
    def num_classes(self) -> int:
        return int(self.module.out_features)

    @property
    def feature_dim(self) -> int:
        return int(self.module.in_features)

    @property
    def has_bias(self) -> bool:
        return self.module.bias is not None

    @property
    def num_parameters(self) -> int:
        return self.num_classes * (self.feature_dim + int(self.has_bias))


def find_head(model: nn.Module, head_module: str | None = None, num_labels: int | None = None) -> HeadInfo:
    """Locate the classification head of `model`.

    Args:
        model (`nn.Module`): An HF `*ForSequenceClassification` / `*ForImageClassification` model or any module whose
            last `nn.Linear` produces the logits.
        head_module (`str`, *optional*): Dotted name given by the user; wins over every heuristic.
        num_labels (`int`, *optional*): Number of classes, used to disambiguate the fallback search.

    Returns:
        [`HeadInfo`]

    Raises:
        [`HeadNotFoundError`]: no suitable `nn.Linear` exists, or `head_module` does not name one.
    """
    model = _unwrap(model)
    if head_module is not None:
        try:
            module = model.get_submodule(head_module)
        except AttributeError as err:
            raise HeadNotFoundError(
                f"`head_module={head_module!r}` does not name a submodule of {type(model).__name__}. {_HOW_TO_POINT}"
            ) from err
        if isinstance(module, nn.Linear):
            return HeadInfo(head_module, module)
        inner = _last_linear(module)
        if inner is None:
            raise HeadNotFoundError(
                f"`head_module={head_module!r}` is a {type(module).__name__} with no nn.Linear inside. {_HOW_TO_POINT}"
            )
        return HeadInfo(f"{head_module}.{inner[0]}" if inner[0] else head_module, inner[1])

    for attribute in _HEAD_ATTRIBUTES:
        module = getattr(model, attribute, None)
        if not isinstance(module, nn.Module):
            continue
        inner = _last_linear(module)
        if inner is None:
            continue
        if num_labels is not None and inner[1].out_features != num_labels:
            continue
        return HeadInfo(f"{attribute}.{inner[0]}" if inner[0] else attribute, inner[1])

    candidates = [(name, sub) for name, sub in model.named_modules() if isinstance(sub, nn.Linear)]
    if num_labels is not None:
        matching = [c for c in candidates if c[1].out_features == num_labels]
        candidates = matching or candidates
    if not candidates:
        raise HeadNotFoundError(
            f"{type(model).__name__} has no nn.Linear layer, so no classification head could be identified. "
            "hf_prune tracks classifiers whose logits come from a final nn.Linear. " + _HOW_TO_POINT
        )
    name, module = candidates[-1]
    return HeadInfo(name, module)


class HeadProbe:
    """Forward/backward hooks on the head that capture `h`, `z` and `∂L/∂z` of the current micro-batch.

    The probe only captures while [`armed`]; evaluation forwards pass through untouched. Captured tensors are detached
    and stay on the model's device until the recorder copies them.
    """

    def __init__(self, head: HeadInfo):
        self.head = head
        self.armed = False
        self.features: torch.Tensor | None = None
        self.logits: torch.Tensor | None = None
        self.logit_grad: torch.Tensor | None = None
        self._handles = [
            head.module.register_forward_pre_hook(self._capture_input),
            head.module.register_forward_hook(self._capture_output),
        ]

    def arm(self) -> None:
        self.features = self.logits = self.logit_grad = None
        self.armed = True

    def disarm(self) -> None:
        self.armed = False

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _capture_input(self, module: nn.Module, args: tuple) -> None:
        if self.armed:
            features = args[0]
            if features.dim() != 2:
                raise UnsupportedModelError(
                    f"The head `{self.head.name}` receives inputs of shape {tuple(features.shape)}; hf_prune needs one "
                    "feature vector per sample (shape [batch, features]). Heads applied per token (token "
                    "classification, GPT-2/Llama-style sequence classifiers) are not supported."
                )
            self.features = features.detach()

    def _capture_output(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if self.armed:
            self.logits = output.detach()
            if output.requires_grad:
                output.register_hook(self._capture_grad)

    def _capture_grad(self, grad: torch.Tensor) -> None:
        self.logit_grad = grad.detach()
