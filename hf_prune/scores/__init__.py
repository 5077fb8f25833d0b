"""Scores: one value (and optionally a vector) per training row, computed from the training record.

Importing this package registers the built-in scores. Sign convention: **higher means keep**.
"""

from . import dynamics, influence, tracin  # noqa: F401  (register the built-in scores)
from .base import (
    SCORE_REGISTRY,
    ScoreFunction,
    ScoreOutput,
    ScoringContext,
    get_score,
    list_scores,
    register_score,
)


__all__ = [
    "SCORE_REGISTRY",
    "ScoreFunction",
    "ScoreOutput",
    "ScoringContext",
    "get_score",
    "list_scores",
    "register_score",
]
