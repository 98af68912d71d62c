"""Calibre: prototype-calibrated self-supervised personalised FL.

The client loss adds to the usual contrastive loss a calibration term over K-means pseudo-labels:
loss = contrastive(z1, z2) + α·(prototype contrastive + prototype classification). The client's
divergence rate is the mean distance of its encodings to their cluster centroids; the server weighs
client models by 1/divergence, normalised.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field, model_validator

from thoughtgraph.agents.tools.arrays import Matrix, as_array, check_array_argument
from thoughtgraph.agents.tools.registry import tool
from thoughtgraph.agents.tools.validation import MAX_ELEMENTS, MAX_MAGNITUDE, InputError, finite_array


def kmeans(points: np.ndarray, k: int, seed: int, iterations: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """(centroids, labels) by Lloyd's algorithm from a seeded k-means++ start. Points are scaled to
    unit magnitude inside (and the centroids scaled back), so squared distances cannot overflow."""
    scale = float(np.abs(points).max()) or 1.0
    centroids, labels = _kmeans_unit(points / scale, k, seed, iterations)
    return centroids * scale, labels


def _kmeans_unit(points: np.ndarray, k: int, seed: int, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centroids = [points[rng.integers(len(points))]]
    for _ in range(1, k):
        distance = ((points[:, None, :] - np.array(centroids)[None]) ** 2).sum(-1).min(axis=1)
        centroids.append(points[rng.choice(len(points), p=distance / distance.sum())] if distance.sum() else points[0])
    centroids = np.array(centroids)
    for _ in range(iterations):
        labels = ((points[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(axis=1)
        updated = np.array(
            [points[labels == j].mean(axis=0) if np.any(labels == j) else centroids[j] for j in range(k)]
        )
        if np.allclose(updated, centroids):
            break
        centroids = updated
    return centroids, labels


def _normalise(z: np.ndarray) -> np.ndarray:
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


def _cross_entropy(scores: np.ndarray, labels: np.ndarray) -> float:
    scores = scores - scores.max(axis=1, keepdims=True)
    return float((np.log(np.exp(scores).sum(axis=1)) - scores[np.arange(len(labels)), labels]).mean())


def nt_xent(z1: np.ndarray, z2: np.ndarray, temperature: float) -> float:
    """SimCLR's contrastive loss: each view's partner is the positive, the other 2n - 2 views negatives."""
    z = _normalise(np.vstack([z1, z2]))
    n = len(z1)
    similarity = z @ z.T / temperature
    np.fill_diagonal(similarity, -np.inf)
    partners = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
    return _cross_entropy(similarity, partners)


def calibre_loss(z1: np.ndarray, z2: np.ndarray, k: int, alpha: float, temperature: float, seed: int) -> dict:
    prototypes, labels = kmeans(_normalise(z1), k, seed)
    contrastive = nt_xent(z1, z2, temperature)
    prototype_contrastive = _cross_entropy(_normalise(z2) @ _normalise(prototypes).T / temperature, labels)
    distances = ((_normalise(z2)[:, None, :] - prototypes[None]) ** 2).sum(-1)
    prototype_classification = _cross_entropy(-distances, labels)
    total = contrastive + alpha * (prototype_contrastive + prototype_classification)
    return {"total": total, "contrastive": contrastive, "prototype_contrastive": prototype_contrastive,
            "prototype_classification": prototype_classification}  # fmt: skip


def divergence_rate(encodings: np.ndarray, k: int, seed: int) -> float:
    """As the reference (TL-System/plato, ``calibre_trainer.compute_divergence_rate`` with
    ``clustering.kmeans_clustering``): the mean over clusters of each cluster's mean distance of its encodings to
    its centroid scaled to unit length (the reference normalises the k-means centroids, not the encodings), so a
    few loose points in a small cluster weigh as much as a large tight cluster."""
    centroids, labels = kmeans(encodings, k, seed)
    size = float(np.abs(centroids).max()) or 1.0  # lengths measured in scaled units: no overflow for huge values
    centroids = centroids / np.maximum(np.linalg.norm(centroids / size, axis=1, keepdims=True) * size, 1e-8)
    scale = max(float(np.abs(encodings).max()), 1.0)
    distances = np.linalg.norm((encodings - centroids[labels]) / scale, axis=1)  # in units of scale
    return float(np.mean([distances[labels == j].mean() for j in np.unique(labels)])) * scale


MAX_LOSS_ROWS = 2048  # NT-Xent compares all 2n views pairwise


class LossInput(BaseModel):
    view_one: Matrix = Field(description="encodings of the first view, one row per sample (or a tensor file)")
    view_two: Matrix = Field(description="encodings of the second view, same shape (or a tensor file)")
    clusters: int = Field(4, ge=1, le=256)
    alpha: float = Field(1.0, ge=0, le=1e6)
    temperature: float = Field(0.5, ge=1e-3, le=1e3)
    seed: int = Field(0, ge=0, le=2**32 - 1)

    @model_validator(mode="after")
    def _check(self) -> LossInput:
        check_array_argument(self.view_one, "view_one", 2, MAX_MAGNITUDE)
        check_array_argument(self.view_two, "view_two", 2, MAX_MAGNITUDE)
        return self

    def views(self) -> tuple[np.ndarray, np.ndarray]:
        one = as_array(self.view_one, "view_one", 2, MAX_MAGNITUDE)
        two = as_array(self.view_two, "view_two", 2, MAX_MAGNITUDE)
        if one.shape != two.shape:
            raise InputError(f"the two views need the same shape, got {one.shape} and {two.shape}")
        if one.shape[0] > MAX_LOSS_ROWS or one.size * self.clusters > MAX_ELEMENTS:
            raise InputError(f"at most {MAX_LOSS_ROWS} encodings per view and {MAX_ELEMENTS:,} encodings x clusters")
        if self.clusters > one.shape[0]:
            raise InputError("more clusters than encodings")
        return one, two


class LossOutput(BaseModel):
    total: float
    contrastive: float
    prototype_contrastive: float
    prototype_classification: float


@tool("calibre_loss", LossInput, "approximation", effects="reads_files")
def calibre_loss_tool(inputs: LossInput) -> LossOutput:
    """Calibre's calibrated self-supervised loss on two views' encodings (an approximation: NT-Xent
    plus alpha x (prototype contrastive + prototype classification) over K-means pseudo-labels; the
    prototype terms are our reading of the paper - cosine logits to prototypes, and negative squared
    distances to them)."""
    one, two = inputs.views()
    parts = calibre_loss(one, two, inputs.clusters, inputs.alpha, inputs.temperature, inputs.seed)
    return LossOutput(**parts)


class AggregateInput(BaseModel):
    client_encodings: list[Matrix] = Field(
        min_length=1, max_length=1000, description="per client, its encodings (rows) or a tensor file of them"
    )
    client_samples: list[float] | None = Field(
        None, max_length=1000, description="per client, its number of samples (defaults to its encodings)"
    )
    clusters: int = Field(4, ge=1, le=256)
    seed: int = Field(0, ge=0, le=2**32 - 1)

    @model_validator(mode="after")
    def _check(self) -> AggregateInput:
        for i, encodings in enumerate(self.client_encodings):
            check_array_argument(encodings, f"client_encodings[{i}]", 2)
        if self.client_samples is not None:
            samples = finite_array(self.client_samples, "client_samples", ndim=1, max_abs=1e15)
            if samples.shape[0] != len(self.client_encodings) or np.any(samples <= 0):
                raise ValueError("client_samples needs one positive count per client")
        return self

    def encodings(self) -> list[np.ndarray]:
        arrays = [as_array(e, f"client_encodings[{i}]", 2) for i, e in enumerate(self.client_encodings)]
        for i, array in enumerate(arrays):
            if array.shape[0] < self.clusters:
                raise InputError(f"client {i} has fewer encodings than clusters")
        total = sum(a.size for a in arrays) * self.clusters
        if total > MAX_ELEMENTS:
            raise InputError(f"encodings x clusters is {total:,}; the limit is {MAX_ELEMENTS:,}")
        return arrays


class AggregateOutput(BaseModel):
    divergence: list[float]
    weights: list[float]
    """The weight of each client's update in the aggregate, as the reference applies it: sample share
    x (1/divergence) / sum(1/divergence)."""
    normalised_weights: list[float]
    """The same weights rescaled to sum to one."""


@tool("calibre_aggregation_weights", AggregateInput, "faithful", effects="reads_files")
def calibre_aggregation_weights(inputs: AggregateInput) -> AggregateOutput:
    """Calibre's divergence-weighted aggregation (faithful to the reference code, TL-System/plato: a
    client's divergence rate is the mean over its K-means clusters of each cluster's mean distance to
    its centroid; its update is scaled by (1/divergence)/sum(1/divergence) and then averaged with
    sample-count weights). Deviations: `clusters` defaults to 4 (the reference clusters into 10) and our
    k-means is Lloyd's from a seeded k-means++ start; clients with a divergence of 0 (every encoding on
    its centroid) share all the weight, where the reference would divide by zero."""
    encodings = inputs.encodings()
    divergence = np.array([divergence_rate(e, inputs.clusters, inputs.seed) for e in encodings])
    # 1/d normalised, in a form that neither overflows for d near 0 nor underflows for huge d
    relative = divergence.min() / np.maximum(divergence, 1e-300) if divergence.min() > 0 else (divergence == 0) * 1.0
    inverse_share = relative / relative.sum()
    samples = np.asarray(inputs.client_samples or [len(e) for e in encodings], dtype=float)
    sample_share = samples / samples.sum()
    weights = sample_share * inverse_share
    return AggregateOutput(
        divergence=[round(float(d), 8) for d in divergence],  # numpy's round multiplies: overflow near 1e300
        weights=weights.round(10).tolist(),
        normalised_weights=(weights / weights.sum()).round(10).tolist(),
    )  # fmt: skip
