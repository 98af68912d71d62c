"""Randomized smoothing (Cohen et al., 2019): certified L2 robustness with Gaussian noise.

CERTIFY as in the paper and locuslab/smoothing: the top class from n0 noisy samples, a one-sided
Clopper-Pearson lower bound on its probability from n more, abstain below 0.5, radius
sigma * inverse normal CDF of the bound. Noise is drawn and classified in batches of ``batch_size``,
so n can be large without holding all samples at once.

Classifiers, as the tool takes them: a linear model given inline, or a state dict in a data-only file
(.safetensors/.npz/.npy) of the named architecture ``mlp``: blocks ``Linear [-> BatchNorm/LayerNorm]
-> ReLU``, as ``nn.Sequential`` writes them. The tool never loads TorchScript or pickled models: its
arguments may come from an incident file or a model, and such files run code when loaded. Any other
classifier (a TorchScript module you trust, a CNN) is certified from Python: ``certify(classify, x, ...)``
takes any function from a batch of inputs to class indices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, PrivateAttr, model_validator
from scipy.stats import beta, norm

from thoughtgraph.agents.tools.arrays import TENSOR_SUFFIXES, Vector, check_path, load_array, load_tensors
from thoughtgraph.agents.tools.model_check import forward, sequential_layers
from thoughtgraph.agents.tools.registry import tool
from thoughtgraph.agents.tools.validation import MAX_MAGNITUDE, InputError, finite_array

MAX_BATCH_ELEMENTS = 2**24


def clopper_pearson_lower(successes: int, trials: int, alpha: float) -> float:
    """One-sided (1 - alpha) lower confidence bound on a binomial proportion."""
    return 0.0 if successes == 0 else float(beta.ppf(alpha, successes, trials - successes + 1))


def _counts(classify: Callable[[np.ndarray], np.ndarray], x: np.ndarray, sigma: float, samples: int, batch: int,
            rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    counts = np.zeros(0, dtype=np.int64)
    for start in range(0, samples, batch):
        size = min(batch, samples - start)
        labels = np.asarray(classify(x + sigma * rng.standard_normal((size, *x.shape))), dtype=np.int64)
        found = np.bincount(labels)
        counts = np.pad(counts, (0, max(0, len(found) - len(counts))))
        counts[: len(found)] += found
    return counts


def certify(
    classify: Callable[[np.ndarray], np.ndarray], x: np.ndarray, sigma: float, n0: int, n: int, alpha: float,
    seed: int, batch: int = 10_000,
) -> tuple[int | None, float]:  # fmt: skip
    """(class, radius), or (None, 0.0) to abstain. ``classify`` maps a batch of inputs to labels."""
    rng = np.random.default_rng(seed)
    top = int(_counts(classify, x, sigma, n0, batch, rng).argmax())
    counts = _counts(classify, x, sigma, n, batch, rng)
    p_lower = clopper_pearson_lower(int(counts[top]) if top < len(counts) else 0, n, alpha)
    if p_lower < 0.5:
        return None, 0.0
    return top, float(sigma * norm.ppf(p_lower))


class SmoothingInput(BaseModel):
    weights: list[list[float]] | None = Field(None, max_length=10_000, description="linear model: classes x features")
    bias: list[float] | None = Field(None, max_length=10_000, description="linear model: one per class")
    model_path: str | None = Field(None, max_length=4096, description="a state dict (.safetensors/.npz)")
    architecture: Literal["mlp"] | None = Field(None, description="what model_path holds: an `mlp` state dict")
    x: Vector = Field(description="the input, flattened (or a tensor file holding it, any shape)")
    input_shape: list[int] | None = Field(None, max_length=8, description="shape of one input (x's size)")
    sigma: float = Field(gt=0, le=1e6)
    n0: int = Field(100, gt=0, le=100_000)
    n: int = Field(1000, gt=0, le=1_000_000)
    alpha: float = Field(0.001, gt=0, lt=1)
    batch_size: int = Field(10_000, gt=0, le=100_000)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    _x: np.ndarray = PrivateAttr()

    @model_validator(mode="after")
    def _check(self) -> SmoothingInput:
        if isinstance(self.x, str):
            check_path(self.x, "x")
            self._x = load_array(self.x, "x", max_abs=MAX_MAGNITUDE).ravel()
        else:
            self._x = finite_array(self.x, "x", ndim=1, max_abs=MAX_MAGNITUDE)
        features = self._x.shape[0]
        if (self.weights is None) == (self.model_path is None):
            raise ValueError("give a linear model (`weights`, `bias`) or a `model_path`, not both")
        if self.weights is not None:
            w = finite_array(self.weights, "weights", ndim=2, max_abs=MAX_MAGNITUDE)
            if (
                self.bias is None
                or finite_array(self.bias, "bias", ndim=1, max_abs=MAX_MAGNITUDE).shape[0] != w.shape[0]
            ):
                raise ValueError(f"bias needs {w.shape[0]} entries, one per class")
            if features != w.shape[1]:
                raise ValueError(f"x needs {w.shape[1]} features")
        else:
            check_path(self.model_path or "", "model_path", TENSOR_SUFFIXES)
            if self.architecture is None:
                raise ValueError("name the architecture of model_path: `mlp` (a state dict)")
        if self.input_shape is not None and (any(s <= 0 for s in self.input_shape)
                                             or int(np.prod(self.input_shape)) != features):  # fmt: skip
            raise ValueError(f"input_shape {self.input_shape} does not hold the {features} values of x")
        if self.batch_size * features > MAX_BATCH_ELEMENTS:
            raise ValueError(f"batch_size x input size is limited to {MAX_BATCH_ELEMENTS:,}")
        return self


class SmoothingOutput(BaseModel):
    abstained: bool
    predicted_class: int | None
    radius: float


def classifier(inputs: SmoothingInput) -> Callable[[np.ndarray], np.ndarray]:
    if inputs.weights is not None:
        w, b = np.asarray(inputs.weights), np.asarray(inputs.bias)
        return lambda batch: np.argmax(batch @ w.T + b, axis=1)
    state = {k: finite_array(np.atleast_1d(v), f"model_path[{k}]").reshape(np.shape(v))
             for k, v in load_tensors(inputs.model_path or "", "model_path").items()}  # fmt: skip
    layers = sequential_layers(state)
    if isinstance(layers, str):
        raise InputError(f"model_path is not an `mlp` state dict: {layers}")
    return lambda batch: forward(state, layers, batch).argmax(axis=1)


@tool("randomized_smoothing_certify", SmoothingInput, "faithful", effects="reads_files")
def randomized_smoothing_certify(inputs: SmoothingInput) -> SmoothingOutput:
    """Certify a classifier at x with randomized smoothing (faithful to CERTIFY: top class from n0
    noisy samples, Clopper-Pearson lower bound on n more, abstain below 0.5, radius sigma * inverse
    normal CDF of the bound). The classifier is a linear model or an `mlp` state dict (never TorchScript or a
    pickle: they run code when loaded); noise is sampled and classified in batches."""
    label, radius = certify(classifier(inputs), inputs._x, inputs.sigma, inputs.n0,
                            inputs.n, inputs.alpha, inputs.seed, inputs.batch_size)  # fmt: skip
    return SmoothingOutput(abstained=label is None, predicted_class=label, radius=radius)
