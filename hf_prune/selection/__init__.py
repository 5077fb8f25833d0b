"""Selectors: turn scores or influence vectors into the rows to keep.

Importing this package registers the built-in selectors.
"""

from . import mip, sampling, simple, vector  # noqa: F401  (register the built-in selectors)
from .base import (
    SELECTOR_REGISTRY,
    Budget,
    SelectionConfig,
    SelectionInputs,
    SelectionOutput,
    Selector,
    check_ratio,
    get_selector,
    keep_count,
    list_selectors,
    register_selector,
)


__all__ = [
    "SELECTOR_REGISTRY",
    "Budget",
    "SelectionConfig",
    "SelectionInputs",
    "SelectionOutput",
    "Selector",
    "check_ratio",
    "get_selector",
    "keep_count",
    "list_selectors",
    "register_selector",
]
