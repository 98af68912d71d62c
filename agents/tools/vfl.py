"""Vertical FL feature reconstruction: the search attack on a passive party's binary features, and a
protection that steers the search to decoys.

The passive party sends Z = X·W + 1·bᵀ (X: n x d binary features, W and the bias b unknown). Every
column of X lies in the column space of [Z, 1], so for a row subset S where Z_S has full column
rank, each binary pattern p on S determines one vector Z·Z_S⁺·p in that space; the patterns whose
vector is binary on every row are the candidate feature columns. A bias only adds the all-ones
direction to the span, which the search handles the same way.

Protection (our construction of "steer the search to decoys"): the passive party computes on
x·a + c + ε instead of x - each true column scaled, shifted, and perturbed by small continuous noise
ε ~ N(0, noise²) per entry - plus binary decoy columns. The shift alone is not enough: with a bias
term the constant c is absorbed into b, the span again contains every true column, and the attack
recovers all of them (seen with noise = 0). The noise takes the true columns out of the span whatever
the bias, so an exact search finds only decoys. Where it does not hold: an attacker who accepts
near-binary candidates (``attack_tolerance`` comparable to the noise) can recover true columns;
the noise must be large against the attacker's tolerance, which costs the model some accuracy.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field, model_validator

from thoughtgraph.agents.tools.registry import tool
from thoughtgraph.agents.tools.validation import InputError

PATTERN_CHUNK = 4096


def full_rank_rows(z: np.ndarray, tolerance: float = 1e-9) -> np.ndarray:
    """A set of rank(z) linearly independent rows of z (greedy Gram-Schmidt)."""
    basis: list[np.ndarray] = []
    chosen: list[int] = []
    scale = max(float(np.abs(z).max()), 1e-300)
    for i, row in enumerate(z / scale):
        residual = row - sum((row @ b) * b for b in basis) if basis else row
        norm = float(np.linalg.norm(residual))
        if norm > tolerance * max(1.0, float(np.linalg.norm(row))):
            basis.append(residual / norm)
            chosen.append(i)
        if len(basis) == z.shape[1]:
            break
    return np.array(chosen, dtype=int)


def search_attack(z: np.ndarray, tolerance: float = 1e-6) -> np.ndarray:
    """Binary columns (n x k) in the column space of z, found by enumerating patterns on a basis of rows."""
    rows = full_rank_rows(z)
    if len(rows) > 24:
        raise InputError(f"the outputs have rank {len(rows)}; the search enumerates 2^rank patterns, limit 2^24")
    projector = z @ np.linalg.pinv(z[rows])
    found = []
    for start in range(1, 2 ** len(rows), PATTERN_CHUNK):  # pattern 0 (all zeros) is skipped
        codes = np.arange(start, min(start + PATTERN_CHUNK, 2 ** len(rows)))
        patterns = ((codes[:, None] >> np.arange(len(rows))[None, :]) & 1).astype(float)
        candidates = projector @ patterns.T
        binary = np.all((np.abs(candidates) < tolerance) | (np.abs(candidates - 1) < tolerance), axis=0)
        found.append(np.round(candidates[:, binary]))
    return np.hstack(found) if found else np.empty((z.shape[0], 0))


def protect(x: np.ndarray, decoys: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Features the passive party computes on instead of x: scaled, shifted, noisy true columns, plus
    binary decoy columns the search will find."""
    shifted = x * rng.uniform(0.5, 2.0, x.shape[1]) + rng.uniform(0.2, 0.8, x.shape[1])
    noisy = shifted + noise * rng.standard_normal(x.shape)
    return np.hstack([noisy, rng.integers(0, 2, (x.shape[0], decoys)).astype(float)])


class AttackInput(BaseModel):
    samples: int = Field(64, gt=0, le=5000)
    binary_features: int = Field(4, gt=0, le=10)
    output_width: int = Field(8, gt=0, le=64)
    bias: bool = Field(True, description="the passive layer adds a bias (Z = F W + b), the usual case")
    protection: bool = False
    decoys: int = Field(2, ge=1, le=4)
    noise: float = Field(0.05, ge=0, le=10, description="protection: std of the noise added to the true columns")
    attack_tolerance: float = Field(1e-6, gt=0, le=0.5, description="how far from 0/1 a candidate entry may be")
    seed: int = Field(0, ge=0, le=2**32 - 1)

    @model_validator(mode="after")
    def _check(self) -> AttackInput:
        columns = self.binary_features + (self.decoys if self.protection else 0)
        if self.output_width < columns + self.bias:
            raise ValueError(f"output_width must be at least the feature count {columns}"
                             + (" + 1 for the bias" if self.bias else ""))  # fmt: skip
        return self


class AttackOutput(BaseModel):
    true_columns_recovered: int
    """Recall: true columns found among the candidates (exactly, not as complements)."""
    true_columns: int
    recovered_fraction: float
    decoy_columns_recovered: int
    candidates: int
    precision: float
    """Candidates that are a true column, over all candidates (0 when there is none)."""
    attacker_pick: int
    """What an attacker without the ground truth keeps: the candidates minus constant columns, one column
    of each complement pair (a binary feature and its complement carry the same information)."""
    attacker_pick_true: int
    """Columns of the pick that are a true column or its complement."""


@tool("vfl_reconstruction_attack", AttackInput, "faithful")
def vfl_reconstruction_attack(inputs: AttackInput) -> AttackOutput:
    """The search attack on binary features in vertical FL, with or without a bias in the passive
    layer and with or without the decoy protection (faithful to the attack's column-space search; the
    protection - scaled, shifted, noisy true features plus binary decoys - is our construction, and it
    holds against an exact search with or without a bias, not against a tolerant one: see the module
    docstring)."""
    rng = np.random.default_rng(inputs.seed)
    x = rng.integers(0, 2, (inputs.samples, inputs.binary_features)).astype(float)
    features = protect(x, inputs.decoys, inputs.noise, rng) if inputs.protection else x
    z = features @ rng.standard_normal((features.shape[1], inputs.output_width))
    if inputs.bias:
        z = z + rng.standard_normal(inputs.output_width)
    found = search_attack(z, inputs.attack_tolerance)

    def matches(columns: np.ndarray) -> int:
        return sum(any(np.array_equal(c, f) for f in found.T) for c in columns.T)

    decoys = features[:, inputs.binary_features :] if inputs.protection else np.empty((inputs.samples, 0))
    recovered = matches(x)
    pick = attacker_pick(found)
    truths = [c for c in x.T] + [1 - c for c in x.T]
    pick_true = sum(any(np.array_equal(c, t) for t in truths) for c in pick.T)
    return AttackOutput(
        true_columns_recovered=recovered, true_columns=inputs.binary_features,
        recovered_fraction=recovered / inputs.binary_features, decoy_columns_recovered=matches(decoys),
        candidates=found.shape[1], precision=recovered / found.shape[1] if found.shape[1] else 0.0,
        attacker_pick=pick.shape[1], attacker_pick_true=pick_true,
    )  # fmt: skip


def attacker_pick(found: np.ndarray) -> np.ndarray:
    """The candidates an attacker keeps without the ground truth: constant columns dropped (they say nothing
    about a sample), and of a column and its complement only the first found (they are the same feature
    with its labels swapped)."""
    kept: list[np.ndarray] = []
    for column in found.T:
        if column.min() == column.max():
            continue
        if any(np.array_equal(column, k) or np.array_equal(column, 1 - k) for k in kept):
            continue
        kept.append(column)
    return np.stack(kept, axis=1) if kept else np.empty((found.shape[0], 0))
