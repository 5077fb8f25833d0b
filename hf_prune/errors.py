"""Exceptions raised by hf_prune.

Every error subclasses [`HfPruneError`] *and* the builtin a caller would expect (`ValueError`, `RuntimeError`, ...),
so `except ValueError` keeps working. Messages name the argument, show the value and say what to do.
"""

from __future__ import annotations


class HfPruneError(Exception):
    """Base class of every error raised by hf_prune."""


class InvalidArgumentError(HfPruneError, ValueError):
    """An argument has the wrong value or type (the message names it and the accepted values)."""


class DatasetError(HfPruneError, ValueError):
    """The dataset handed to hf_prune cannot be pruned as it is (wrong type, empty, no labels, ...)."""


class HeadNotFoundError(HfPruneError, ValueError):
    """The classification head (the last linear layer producing the logits) could not be identified."""


class UnsupportedModelError(HfPruneError, ValueError):
    """The model's loss or output is not what a method needs (e.g. regression for SGD-Influence)."""


class UnsupportedOptimizerError(HfPruneError, ValueError):
    """The optimizer has no exact linearisation in the SGD-Influence sweep."""


class RecordError(HfPruneError, RuntimeError):
    """The training record is missing, incomplete, corrupted or belongs to another dataset."""


class ScoreNotComputableError(HfPruneError, RuntimeError):
    """A score needs a signal or epochs that the record does not hold."""


class UnknownPluginError(HfPruneError, ValueError):
    """An unknown score or selector name was requested (the message lists the known ones)."""


class SelectionError(HfPruneError, RuntimeError):
    """The selection could not produce a subset (infeasible constraints, solver failure without fallback, ...)."""


class HubError(HfPruneError, RuntimeError):
    """Pushing to or reading from the Hugging Face Hub failed; local results are kept."""


class ResultFormatError(HfPruneError, ValueError):
    """A saved result is corrupted, truncated or written by an incompatible version of hf_prune."""


class TrainingDivergedError(HfPruneError, RuntimeError):
    """Training produced non-finite losses or logits, so nothing recorded from it can be trusted."""
