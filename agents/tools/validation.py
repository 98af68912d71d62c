"""Shared input checks for tool models: finite numbers, matching shapes, non-empty lists."""

from __future__ import annotations

import numpy as np


def finite_array(values: object, name: str, *, ndim: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return array
