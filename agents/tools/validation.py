"""Shared input checks for tool models: finite numbers, matching shapes, bounded sizes.

Every size an agent can choose is bounded, so that no argument can ask for more memory or time than
a tool call may take (``MAX_ELEMENTS`` floats in any one array, about 256 MiB as float64).
"""

from __future__ import annotations

import math

import numpy as np

MAX_ELEMENTS = 2**25
"""Largest array (elements) a tool accepts, inline or from a file."""

MAX_MAGNITUDE = 1e12
"""Largest |value| accepted where a tool squares or sums values; beyond it float64 arithmetic loses
the result (1e300 squared is infinite), and no real weight, loss or speed comes near it."""


class InputError(ValueError):
    """Input a tool cannot compute on, found while computing (validators raise plain ValueError).
    The registry returns it to the agent as a tool error; any other exception is a bug in the tool."""


def finite_array(values: object, name: str, *, ndim: int | None = None, max_abs: float | None = None) -> np.ndarray:
    """``values`` as a float64 array, or a ValueError naming ``name`` and what is wrong with it."""
    try:
        array = np.asarray(values, dtype=float)
    except (ValueError, TypeError) as error:
        raise InputError(f"{name} is not a rectangular array of numbers ({error})") from None
    if array.size == 0:
        raise InputError(f"{name} is empty")
    if array.size > MAX_ELEMENTS:
        raise InputError(f"{name} has {array.size:,} elements; the limit is {MAX_ELEMENTS:,}")
    if ndim is not None and array.ndim != ndim:
        raise InputError(f"{name} must be {ndim}-dimensional, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name} holds NaN or infinite values")
    if max_abs is not None and np.abs(array).max() > max_abs:
        raise InputError(f"{name} holds a value of magnitude {np.abs(array).max():.3g}; the limit is {max_abs:g}")
    return array


def check_finite_output(value: object, where: str = "result") -> None:
    """Raise ArithmeticError when any float in a (nested) tool result is NaN or infinite: JSON has no such
    numbers, and an agent must never read them as advice."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ArithmeticError(f"the computation produced a non-finite value at {where}")
    if isinstance(value, dict):
        for key, item in value.items():
            check_finite_output(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_finite_output(item, f"{where}[{index}]")
