"""hf_prune: dataset pruning for the Hugging Face stack.

Importing `hf_prune` is light: the public names below are loaded on first use (PEP 562), so `import hf_prune` does
not import torch, transformers, mip or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__


_LAZY = {
    "PruneArguments": "hf_prune.config",
    "PruneTrainer": "hf_prune.trainer",
    "PruneTrainerMixin": "hf_prune.trainer",
    "make_prune_trainer": "hf_prune.trainer",
    "HFPruner": "hf_prune.pruner",
    "PruneResult": "hf_prune.result",
    "RandomComparison": "hf_prune.evaluation",
    "SelectionConfig": "hf_prune.selection.base",
    "TrainingRecord": "hf_prune.tracking.record",
    "list_scores": "hf_prune.scores",
    "get_score": "hf_prune.scores",
    "register_score": "hf_prune.scores",
    "list_selectors": "hf_prune.selection",
    "get_selector": "hf_prune.selection",
    "register_selector": "hf_prune.selection",
    "push_to_hub": "hf_prune.hub",
}

__all__ = [
    "HFPruner",
    "PruneArguments",
    "PruneResult",
    "PruneTrainer",
    "PruneTrainerMixin",
    "RandomComparison",
    "SelectionConfig",
    "TrainingRecord",
    "__version__",
    "get_score",
    "get_selector",
    "list_scores",
    "list_selectors",
    "make_prune_trainer",
    "push_to_hub",
    "register_score",
    "register_selector",
]

if TYPE_CHECKING:  # pragma: no cover
    from .config import PruneArguments
    from .evaluation import RandomComparison
    from .hub import push_to_hub
    from .pruner import HFPruner
    from .result import PruneResult
    from .scores import get_score, list_scores, register_score
    from .selection import get_selector, list_selectors, register_selector
    from .selection.base import SelectionConfig
    from .tracking.record import TrainingRecord
    from .trainer import PruneTrainer, PruneTrainerMixin, make_prune_trainer


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hf_prune' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
