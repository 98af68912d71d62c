"""Vertical FL feature reconstruction: the search attack on a passive party's binary features, and a
protection that steers the search to decoys.

The passive party sends Z = X·W (X: n x d binary features, W unknown). Every column of X lies in the
column space of Z, so for a row subset S where Z_S has full column rank, each binary pattern b on S
determines one vector Z·Z_S⁺·b in that space; the patterns whose vector is binary on every row are
the candidate feature columns.
"""

from __future__ import annotations

import itertools

import numpy as np
from pydantic import BaseModel, Field

from agents.tools.registry import tool


def full_rank_rows(z: np.ndarray) -> np.ndarray:
    """A set of rank(z) rows of z that are linearly independent (greedy)."""
    rank = np.linalg.matrix_rank(z)
    chosen: list[int] = []
    for i in range(z.shape[0]):
        if np.linalg.matrix_rank(z[[*chosen, i]]) > len(chosen):
            chosen.append(i)
        if len(chosen) == rank:
            break
    return np.array(chosen)


def search_attack(z: np.ndarray, tolerance: float = 1e-6) -> np.ndarray:
    """Binary columns (n x k) in the column space of z, found by enumerating patterns on a basis of rows."""
    rows = full_rank_rows(z)
    projector = z @ np.linalg.pinv(z[rows])
    patterns = np.array(list(itertools.product((0.0, 1.0), repeat=len(rows))))[1:]  # all but zeros
    candidates = projector @ patterns.T  # n x 2^r - 1
    binary = np.all((np.abs(candidates) < tolerance) | (np.abs(candidates - 1) < tolerance), axis=0)
    return np.round(candidates[:, binary])


def protect(x: np.ndarray, decoys: int, rng: np.random.Generator) -> np.ndarray:
    """Features the passive party computes on instead of x: each column shifted by a non-binary offset
    and scaled (so no true column stays in the span), plus binary decoy columns the search will find."""
    shifted = x * rng.uniform(0.5, 2.0, x.shape[1]) + rng.uniform(0.2, 0.8, x.shape[1])
    return np.hstack([shifted, rng.integers(0, 2, (x.shape[0], decoys)).astype(float)])


class AttackInput(BaseModel):
    samples: int = Field(64, gt=0)
    binary_features: int = Field(4, gt=0, le=10)
    output_width: int = Field(8, gt=0)
    protection: bool = False
    decoys: int = Field(2, ge=1, le=4)
    seed: int = 0


class AttackOutput(BaseModel):
    true_columns_recovered: int
    true_columns: int
    recovered_fraction: float
    decoy_columns_recovered: int
    candidates: int


@tool("vfl_reconstruction_attack", AttackInput, "faithful")
def vfl_reconstruction_attack(inputs: AttackInput) -> AttackOutput:
    """The search attack on binary features in vertical FL, with or without the decoy protection
    (faithful to the attack's column-space search; the protection is our construction of "steer the
    search to decoys": shifted, scaled true features plus binary decoy columns)."""
    rng = np.random.default_rng(inputs.seed)
    x = rng.integers(0, 2, (inputs.samples, inputs.binary_features)).astype(float)
    features = protect(x, inputs.decoys, rng) if inputs.protection else x
    if inputs.output_width < features.shape[1]:
        raise ValueError(f"output_width must be at least the feature count {features.shape[1]}")
    z = features @ rng.standard_normal((features.shape[1], inputs.output_width))
    found = search_attack(z)
    matches = lambda columns: sum(any(np.array_equal(c, f) for f in found.T) for c in columns.T)  # noqa: E731
    decoys = features[:, inputs.binary_features :] if inputs.protection else np.empty((inputs.samples, 0))
    recovered = matches(x)
    return AttackOutput(
        true_columns_recovered=recovered, true_columns=inputs.binary_features,
        recovered_fraction=recovered / inputs.binary_features, decoy_columns_recovered=matches(decoys),
        candidates=found.shape[1],
    )  # fmt: skip
