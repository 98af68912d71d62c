"""FedReview: reviewers screen poisoned updates before aggregation, compared with robust aggregators.

Each round, random reviewers evaluate every client update on their own data, rank the updates by
loss, estimate how many are poisoned, and flag that many of the worst. The server drops an update
when a majority of reviewers flag it, then averages the rest. The paper leaves the estimate and the
vote open; ours: a reviewer's estimate counts the updates whose loss lies above the median by more
than ``outlier_mads`` median absolute deviations, and a strict majority of reviewers drops an update.
A malicious reviewer flags benign updates instead.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from thoughtgraph.agents.tools import fl_common as fl
from thoughtgraph.agents.tools.registry import tool


def coordinate_median(updates: np.ndarray) -> np.ndarray:
    return np.median(updates, axis=0)


def trimmed_mean(updates: np.ndarray, trim: int) -> np.ndarray:
    ordered = np.sort(updates, axis=0)
    return ordered[trim : len(updates) - trim].mean(axis=0)


def krum(updates: np.ndarray, attackers: int) -> np.ndarray:
    """Krum: the update with the smallest summed squared distance to its n - f - 2 nearest neighbours
    (distances from the Gram matrix: memory grows with clients², not clients² x parameters)."""
    gram = updates @ updates.T
    squared = np.diag(gram)
    distances = np.maximum(squared[:, None] + squared[None, :] - 2 * gram, 0)
    closest = max(1, len(updates) - attackers - 2)
    scores = np.sort(distances, axis=1)[:, 1 : closest + 1].sum(axis=1)
    return updates[int(np.argmin(scores))]


def review(
    global_params: np.ndarray,
    updates: np.ndarray,
    reviewer_data: list[tuple[np.ndarray, np.ndarray]],
    malicious_reviewers: list[bool],
    outlier_mads: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Boolean mask of the updates a strict majority of reviewers flags as poisoned."""
    votes = np.zeros(len(updates))
    for (x, y), malicious in zip(reviewer_data, malicious_reviewers, strict=True):
        loss = np.array([fl.losses(global_params + u, x, y).mean() for u in updates])
        median = np.median(loss)
        spread = np.median(np.abs(loss - median)) + 1e-12
        suspects = int((loss > median + outlier_mads * spread).sum())
        if malicious:  # lies: flags the best updates
            flagged = np.argsort(loss)[:suspects] if suspects else rng.choice(len(updates), 1)
        else:
            flagged = np.argsort(-loss)[:suspects]
        votes[flagged] += 1
    return votes > len(reviewer_data) / 2


class FedReviewInput(BaseModel):
    clients: int = Field(10, ge=4, le=200)
    attackers: int = Field(3, ge=0)
    attack: Literal["sign_flip", "scaling"] = "sign_flip"
    attack_scale: float = Field(
        4.0, gt=0, le=1000, description="sign_flip sends -scale x update; scaling sends scale x"
    )
    reviewers: int = Field(5, ge=1)
    rounds: int = Field(15, gt=0, le=200)
    outlier_mads: float = Field(3.0, gt=0, le=1e6)
    local_epochs: int = Field(1, gt=0, le=20)
    learning_rate: float = Field(0.5, gt=0, le=10)
    seed: int = Field(0, ge=0, le=2**32 - 1)

    @model_validator(mode="after")
    def _check(self) -> FedReviewInput:
        if self.attackers * 2 >= self.clients:
            raise ValueError("attackers must be fewer than half of the clients")
        if self.reviewers > self.clients:
            raise ValueError("reviewers cannot outnumber clients")
        if self.clients * self.rounds * self.local_epochs > 4000:
            raise ValueError("clients x rounds x local_epochs is limited to 4,000 local trainings per aggregator")
        return self


class FedReviewOutput(BaseModel):
    accuracy: dict[str, float]
    """Final test accuracy per aggregator, plus 'clean' (FedAvg without attackers)."""
    rejected_poisoned: float
    """Share of poisoned updates FedReview dropped."""
    rejected_benign: float
    """Share of benign updates FedReview dropped."""


def simulate(inputs: FedReviewInput) -> FedReviewOutput:
    data = fl.digits_clients(inputs.clients, inputs.seed, skew=5.0)
    sizes = np.array([len(y) for y in data.client_y], dtype=float)
    malicious = np.arange(inputs.clients) < inputs.attackers
    aggregators = ["fedavg", "median", "trimmed_mean", "krum", "fedreview", "clean"]
    params = {name: np.zeros(fl.PARAMETERS) for name in aggregators}
    dropped_poisoned = dropped_benign = 0
    for round_index in range(inputs.rounds):
        for name in aggregators:
            rng = np.random.default_rng((inputs.seed, round_index, aggregators.index(name)))
            g = params[name]
            updates = np.stack([
                fl.local_train(g, x, y, epochs=inputs.local_epochs, lr=inputs.learning_rate, batch=32, rng=rng) - g
                for x, y in zip(data.client_x, data.client_y, strict=True)
            ])  # fmt: skip
            if name != "clean":
                factor = -inputs.attack_scale if inputs.attack == "sign_flip" else inputs.attack_scale
                updates[malicious] *= factor
            weights = sizes / sizes.sum()
            if name in ("fedavg", "clean"):
                step = weights @ updates
            elif name == "median":
                step = coordinate_median(updates)
            elif name == "trimmed_mean":
                step = trimmed_mean(updates, inputs.attackers)
            elif name == "krum":
                step = krum(updates, inputs.attackers)
            else:
                chosen = rng.choice(inputs.clients, inputs.reviewers, replace=False)
                reviewer_data = [(data.client_x[c], data.client_y[c]) for c in chosen]
                drop = review(g, updates, reviewer_data, malicious[chosen].tolist(), inputs.outlier_mads, rng)
                dropped_poisoned += int((drop & malicious).sum())
                dropped_benign += int((drop & ~malicious).sum())
                keep = ~drop if (~drop).any() else np.ones_like(drop)
                step = (weights[keep] / weights[keep].sum()) @ updates[keep]
            params[name] = g + step
    total_poisoned = max(1, inputs.attackers * inputs.rounds)
    total_benign = (inputs.clients - inputs.attackers) * inputs.rounds
    return FedReviewOutput(
        accuracy={n: round(fl.accuracy(p, data.test_x, data.test_y), 4) for n, p in params.items()},
        rejected_poisoned=dropped_poisoned / total_poisoned,
        rejected_benign=dropped_benign / total_benign,
    )


@tool("fedreview_simulate", FedReviewInput, "approximation")
def fedreview_simulate(inputs: FedReviewInput) -> FedReviewOutput:
    """FedReview against poisoned updates on digits, next to FedAvg, coordinate median, trimmed mean and
    Krum (an approximation: the paper does not publish its estimate and vote rules; ours are the
    MAD-outlier count per reviewer and a strict majority vote, see the module docstring)."""
    return simulate(inputs)
