"""Shared pieces of the federated-learning tools: digits data split across clients, and a softmax-
regression model trained with vectorised numpy (parameters are one flat vector)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEATURES, CLASSES = 64, 10
PARAMETERS = FEATURES * CLASSES + CLASSES


@dataclass
class FederatedData:
    client_x: list[np.ndarray]
    client_y: list[np.ndarray]
    test_x: np.ndarray
    test_y: np.ndarray


def digits_clients(clients: int, seed: int, *, skew: float = 1.0, test_share: float = 0.25) -> FederatedData:
    """sklearn's digits (shipped with the package), split into a test set and non-IID client shards
    (class proportions per client drawn from a Dirichlet with concentration ``skew``)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.target))
    x, y = digits.data[order] / 16.0, digits.target[order]
    cut = int(len(y) * test_share)
    train_x, train_y = x[cut:], y[cut:]
    shares = rng.dirichlet([skew] * clients, size=CLASSES)  # classes x clients
    owner = np.empty(len(train_y), dtype=int)
    for label in range(CLASSES):
        members = np.where(train_y == label)[0]
        owner[members] = rng.choice(clients, size=len(members), p=shares[label])
    if clients > len(owner):
        raise ValueError(f"{clients} clients cannot each hold a sample of {len(owner)}")
    for client in range(clients):  # every client holds some data: take a sample from the largest shard
        if not np.any(owner == client):
            largest = np.bincount(owner, minlength=clients).argmax()
            owner[rng.choice(np.flatnonzero(owner == largest))] = client
    return FederatedData(
        [train_x[owner == c] for c in range(clients)], [train_y[owner == c] for c in range(clients)], x[:cut], y[:cut]
    )


def unpack(params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return params[: FEATURES * CLASSES].reshape(FEATURES, CLASSES), params[FEATURES * CLASSES :]


def logits(params: np.ndarray, x: np.ndarray) -> np.ndarray:
    weights, bias = unpack(params)
    return x @ weights + bias


def losses(params: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-sample cross-entropy."""
    z = logits(params, x)
    z = z - z.max(axis=1, keepdims=True)
    return np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]


def accuracy(params: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    return float((logits(params, x).argmax(axis=1) == y).mean())


def local_train(
    params: np.ndarray, x: np.ndarray, y: np.ndarray, *, epochs: int, lr: float, batch: int, rng: np.random.Generator
) -> np.ndarray:
    """Mini-batch SGD on softmax regression; returns new parameters."""
    params = params.copy()
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch):
            rows = order[start : start + batch]
            z = logits(params, x[rows])
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(rows)), y[rows]] -= 1
            grad_w, grad_b = x[rows].T @ p / len(rows), p.mean(axis=0)
            params -= lr * np.concatenate([grad_w.ravel(), grad_b])
    return params
