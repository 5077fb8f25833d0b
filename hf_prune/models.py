"""A small CNN image classifier as a Hugging Face `PreTrainedModel` (used by the demo, examples and benchmark).

It is the network of the Fashion-MNIST prototype: Conv(32, 3×3) → ReLU → Conv(64, 3×3) → ReLU → MaxPool 2 →
Linear(128) → ReLU → Linear(num_labels). No BatchNorm and no dropout, so per-sample quantities are well defined.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput


class SmallCNNConfig(PretrainedConfig):
    """Configuration of [`SmallCNNForImageClassification`].

    Args:
        image_size (`int`): Height and width of the (square) input.
        num_channels (`int`): Input channels.
        conv_channels (`list[int]`): Channels of the two convolutions.
        hidden_size (`int`): Width of the penultimate layer (the head's input).
    """

    model_type = "hf_prune_small_cnn"

    def __init__(
        self,
        image_size: int = 28,
        num_channels: int = 1,
        conv_channels: tuple[int, int] | list[int] = (32, 64),
        hidden_size: int = 128,
        **kwargs,
    ):
        self.image_size = image_size
        self.num_channels = num_channels
        self.conv_channels = list(conv_channels)
        self.hidden_size = hidden_size
        super().__init__(**kwargs)


class SmallCNNForImageClassification(PreTrainedModel):
    """Small CNN classifier; `classifier` is its head (an `nn.Linear`)."""

    config_class = SmallCNNConfig
    main_input_name = "pixel_values"

    def __init__(self, config: SmallCNNConfig):
        super().__init__(config)
        c1, c2 = config.conv_channels
        side = (config.image_size - 4) // 2
        self.features = nn.Sequential(
            nn.Conv2d(config.num_channels, c1, 3),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(c2 * side * side, config.hidden_size),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # PyTorch's default initialisation (as in the prototype); PreTrainedModel would otherwise re-initialise.
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.reset_parameters()

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, return_dict: bool | None = None
    ) -> ImageClassifierOutput:
        logits = self.classifier(self.features(pixel_values))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)


def register_auto_classes() -> None:
    """Let `AutoConfig` / `AutoModelForImageClassification` load saved small CNNs (e.g. a `Trainer`'s checkpoints of
    `hf-prune train --task digits`, read by `HFPruner.from_checkpoints`)."""
    from transformers import AutoConfig, AutoModelForImageClassification

    AutoConfig.register(SmallCNNConfig.model_type, SmallCNNConfig, exist_ok=True)
    AutoModelForImageClassification.register(SmallCNNConfig, SmallCNNForImageClassification, exist_ok=True)
