"""Randomized smoothing (Cohen et al., 2019): certified L2 robustness with Gaussian noise."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydantic import BaseModel, Field, model_validator
from scipy.stats import beta, norm

from agents.tools.registry import tool
from agents.tools.validation import finite_array


def clopper_pearson_lower(successes: int, trials: int, alpha: float) -> float:
    """One-sided (1 - alpha) lower confidence bound on a binomial proportion."""
    return 0.0 if successes == 0 else float(beta.ppf(alpha, successes, trials - successes + 1))


def certify(
    classify: Callable[[np.ndarray], np.ndarray], x: np.ndarray, sigma: float, n0: int, n: int, alpha: float, seed: int
) -> tuple[int | None, float]:
    """(class, radius), or (None, 0.0) to abstain. ``classify`` maps a batch of inputs to labels."""
    rng = np.random.default_rng(seed)
    selection = classify(x + sigma * rng.standard_normal((n0, *x.shape)))
    top = int(np.bincount(selection).argmax())
    counts = classify(x + sigma * rng.standard_normal((n, *x.shape)))
    p_lower = clopper_pearson_lower(int((counts == top).sum()), n, alpha)
    if p_lower < 0.5:
        return None, 0.0
    return top, float(sigma * norm.ppf(p_lower))


class SmoothingInput(BaseModel):
    weights: list[list[float]] = Field(description="classes x features of a linear classifier")
    bias: list[float]
    x: list[float]
    sigma: float = Field(gt=0)
    n0: int = Field(100, gt=0)
    n: int = Field(1000, gt=0)
    alpha: float = Field(0.001, gt=0, lt=1)
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> SmoothingInput:
        w = finite_array(self.weights, "weights", ndim=2)
        if finite_array(self.bias, "bias", ndim=1).shape[0] != w.shape[0]:
            raise ValueError(f"bias needs {w.shape[0]} entries, one per class")
        if finite_array(self.x, "x", ndim=1).shape[0] != w.shape[1]:
            raise ValueError(f"x needs {w.shape[1]} features")
        return self


class SmoothingOutput(BaseModel):
    abstained: bool
    predicted_class: int | None
    radius: float


@tool("randomized_smoothing_certify", SmoothingInput, "faithful")
def randomized_smoothing_certify(inputs: SmoothingInput) -> SmoothingOutput:
    """Certify a linear classifier at x with randomized smoothing (faithful to CERTIFY: top class from
    n0 noisy samples, Clopper-Pearson lower bound on n more, abstain below 0.5, radius sigma * inverse
    normal CDF of the bound)."""
    w, b = np.asarray(inputs.weights), np.asarray(inputs.bias)
    label, radius = certify(lambda batch: np.argmax(batch @ w.T + b, axis=1), np.asarray(inputs.x), inputs.sigma,
                            inputs.n0, inputs.n, inputs.alpha, inputs.seed)  # fmt: skip
    return SmoothingOutput(abstained=label is None, predicted_class=label, radius=radius)
