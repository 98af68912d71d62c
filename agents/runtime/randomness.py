"""Seeded randomness: every random choice of a method derives from the run's seed and a name."""

from __future__ import annotations

import hashlib
import random


def derived_seed(seed: int, *keys: object) -> int:
    """A stable 31-bit seed for (seed, keys): the same inputs give the same seed in every process."""
    digest = hashlib.sha256(repr((seed, *keys)).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def rng(seed: int, *keys: object) -> random.Random:
    return random.Random(derived_seed(seed, *keys))
