"""Validators for integer and numeric options, shared by every config, score and selector.

Each raises [`InvalidArgumentError`] with one message shape: the option, the accepted range, the value received
(`"`k` must be a positive integer, got 0."`). `bool` is never a number here: `True` as a count or a ratio is a mistake,
not `1`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import InvalidArgumentError


def is_int(value: Any, numpy: bool = True) -> bool:
    """Whether `value` is an integer and not a `bool` (numpy integers count unless `numpy=False`)."""
    kinds = (int, np.integer) if numpy else int
    return isinstance(value, kinds) and not isinstance(value, bool)


def is_number(value: Any, numpy: bool = False) -> bool:
    """Whether `value` is an `int` or a `float` and not a `bool` (`np.float64` is a `float`; `numpy=True` also takes
    every numpy integer and floating scalar)."""
    kinds = (int, float, np.integer, np.floating) if numpy else (int, float)
    return isinstance(value, kinds) and not isinstance(value, bool)


def _fail(option: str, value: Any, accepted: str, hint: str | None, context: str | None) -> InvalidArgumentError:
    prefix = f"{context}: " if context else ""
    suffix = f" {hint}" if hint else ""
    return InvalidArgumentError(f"{prefix}`{option}` must be {accepted}, got {value!r}.{suffix}")


def _int_range(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"an integer in [{minimum}, {maximum}]"
    if maximum is not None:
        return f"an integer of at most {maximum}"
    if minimum is None:
        return "an integer"
    return {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer of at least {minimum}")


def check_int(
    option: str,
    value: Any,
    minimum: int | None = None,
    maximum: int | None = None,
    *,
    allow_none: bool = False,
    numpy: bool = True,
    accepted: str | None = None,
    hint: str | None = None,
    context: str | None = None,
) -> int | None:
    """Validate an integer option and return it as a Python `int` (or `None`, if allowed and given).

    Args:
        option (`str`): The option's name, as the user writes it.
        value (`Any`): What the user passed.
        minimum, maximum (`int`, *optional*): Inclusive bounds.
        allow_none (`bool`): Accept `None` (and say so in the message).
        numpy (`bool`): Accept numpy integer scalars (the default; `False` for options that are only ever Python ints).
        accepted (`str`, *optional*): Replaces the generated description of what is accepted ("a positive integer"),
            for options with a unit or other accepted values; it must still state the range.
        hint (`str`, *optional*): A sentence appended to the message (what the option means, how to fix it).
        context (`str`, *optional*): Prefix naming the owner, e.g. "Score `el2n`".

    Example:

    ```python
    >>> check_int("k", 5, minimum=1)
    5
    >>> check_int("k", 0, minimum=1)
    Traceback (most recent call last):
    hf_prune.errors.InvalidArgumentError: `k` must be a positive integer, got 0.
    ```
    """
    if value is None and allow_none:
        return None
    if (
        not is_int(value, numpy)
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
    ):
        if accepted is None:
            accepted = _int_range(minimum, maximum) + (" or None" if allow_none else "")
        raise _fail(option, value, accepted, hint, context)
    return int(value)


def _number_range(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low == 0:
        return "a positive number" if low_open else "a non-negative number"
    if low is not None:
        return f"a number {'greater than' if low_open else 'at least'} {low:g}"
    if high is not None:
        return f"a number {'less than' if high_open else 'at most'} {high:g}"
    return "a number"


def check_number(
    option: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = False,
    numpy: bool = False,
    accepted: str | None = None,
    hint: str | None = None,
    context: str | None = None,
) -> float:
    """Validate a numeric option (`int` or `float`, never `bool` or NaN) and return it as a `float`.

    Args:
        option (`str`): The option's name, as the user writes it.
        value (`Any`): What the user passed.
        low, high (`float`, *optional*): Bounds, inclusive unless `low_open` / `high_open`.
        finite (`bool`): Also refuse `±inf` (an unbounded side accepts infinity otherwise).
        numpy (`bool`): Also accept numpy integer and floating scalars (`np.float64` is a `float` and always passes).
        accepted, hint, context: As in [`check_int`].

    Example:

    ```python
    >>> check_number("fraction", 0.5, 0, 1, low_open=True)
    0.5
    >>> check_number("fraction", 0, 0, 1, low_open=True)
    Traceback (most recent call last):
    hf_prune.errors.InvalidArgumentError: `fraction` must be a number in (0, 1], got 0.
    ```
    """
    valid = is_number(value, numpy) and value == value  # NaN fails every comparison, so refuse it outright
    if valid and finite:
        valid = isinstance(value, (int, np.integer)) or math.isfinite(value)
    if valid and low is not None:
        valid = value > low if low_open else value >= low
    if valid and high is not None:
        valid = value < high if high_open else value <= high
    if not valid:
        raise _fail(option, value, accepted or _number_range(low, high, low_open, high_open), hint, context)
    return float(value)
