"""NVFP4 hot channels: 4-bit fake quantisation, persistent hot-channel detection, and the residual patch.

NVFP4: values on the E2M1 grid, blocks of 16 consecutive elements along a row share an E4M3 (FP8)
scale, and one FP32 scale per tensor maps the largest block scale into E4M3's range.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field, model_validator

from thoughtgraph.agents.tools.arrays import ArrayInput, Matrix, as_array, check_array_argument
from thoughtgraph.agents.tools.registry import tool
from thoughtgraph.agents.tools.validation import MAX_ELEMENTS, MAX_MAGNITUDE, InputError

E2M1_GRID = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])
E2M1_MAX, E4M3_MAX, BLOCK = 6.0, 448.0, 16
MAX_FLOPS = 2**34


def round_e4m3(values: np.ndarray) -> np.ndarray:
    """Round non-negative values to FP8 E4M3 (3 mantissa bits, exponents -6..8, subnormals, max 448)."""
    clipped = np.clip(values, 0.0, E4M3_MAX)
    exponent = np.floor(np.log2(np.maximum(clipped, 2.0**-9)))
    step = 2.0 ** (np.clip(exponent, -6, 8) - 3)
    return np.minimum(np.round(clipped / step) * step, E4M3_MAX)


def round_e2m1(values: np.ndarray) -> np.ndarray:
    """Round to the nearest signed E2M1 value (magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6), ties to the even one (mantissa
    bit 0: 0, 1, 2, 4), as hardware rounds: 0.75 -> 1, 1.75 -> 2, 3.5 -> 4, 2.5 -> 2."""
    midpoints = (E2M1_GRID[1:] + E2M1_GRID[:-1]) / 2
    magnitude = np.abs(values)
    index = np.searchsorted(midpoints, magnitude)  # a tie lands on the smaller neighbour
    tie = magnitude == midpoints[np.minimum(index, len(midpoints) - 1)]
    index = np.where(tie & (index % 2 == 1), index + 1, index)  # odd grid positions have mantissa bit 1
    return np.sign(values) * E2M1_GRID[index]


def nvfp4_quantize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(dequantised x, per-block E4M3 scales, tensor scale). Rows are padded to a multiple of 16."""
    rows, cols = x.shape
    padded = np.pad(x, ((0, 0), (0, (-cols) % BLOCK)))
    blocks = padded.reshape(rows, -1, BLOCK)
    tensor_scale = float(np.abs(x).max() / (E2M1_MAX * E4M3_MAX)) or 1.0
    block_scales = round_e4m3(np.abs(blocks).max(axis=-1) / E2M1_MAX / tensor_scale)
    divisor = np.where(block_scales == 0, 1.0, block_scales)[..., None] * tensor_scale
    quantised = round_e2m1(blocks / divisor) * divisor
    return quantised.reshape(rows, -1)[:, :cols], block_scales, tensor_scale


class QuantizeOutput(BaseModel):
    relative_mse: float
    max_abs_error: float
    blocks: int
    tensor_scale: float


@tool("nvfp4_quantize", ArrayInput, "faithful", effects="reads_files")
def nvfp4_quantize_tool(inputs: ArrayInput) -> QuantizeOutput:
    """NVFP4 fake quantisation (faithful to the format: E2M1 values, 16-element blocks with E4M3
    scales, an FP32 per-tensor scale): the error it introduces on the given matrix."""
    x = inputs.load()
    dequantised, scales, tensor_scale = nvfp4_quantize(x)
    error = x - dequantised
    return QuantizeOutput(
        relative_mse=float((error**2).mean() / max((x**2).mean(), 1e-30)),
        max_abs_error=float(np.abs(error).max()),
        blocks=int(scales.size),
        tensor_scale=tensor_scale,
    )


class HotChannelInput(BaseModel):
    channel_max_abs: Matrix = Field(description="steps x channels: max |activation| per channel per step")
    hot_factor: float = Field(
        8.0, gt=1, le=1e6, description="hot at a step when above this multiple of the step's median"
    )
    persistence: float = Field(0.8, gt=0, le=1, description="share of steps a persistent hot channel is hot")

    @model_validator(mode="after")
    def _check(self) -> HotChannelInput:
        check_array_argument(self.channel_max_abs, "channel_max_abs", 2, MAX_MAGNITUDE)
        return self

    def stats(self) -> np.ndarray:
        stats = as_array(self.channel_max_abs, "channel_max_abs", 2, MAX_MAGNITUDE)
        if np.any(stats < 0):
            raise InputError("channel_max_abs holds negative values; give magnitudes")
        return stats


class HotChannelOutput(BaseModel):
    persistent: list[int]
    transient: list[int]
    hot_share: list[float]
    """Per channel, the share of steps it was hot."""


def detect_hot_channels(stats: np.ndarray, hot_factor: float, persistence: float) -> HotChannelOutput:
    medians = np.median(stats, axis=1, keepdims=True)
    hot = stats > hot_factor * np.maximum(medians, 1e-12)
    share = hot.mean(axis=0)
    return HotChannelOutput(
        persistent=np.where(share >= persistence)[0].tolist(),
        transient=np.where((share > 0) & (share < persistence))[0].tolist(),
        hot_share=share.round(4).tolist(),
    )


@tool("nvfp4_hot_channels", HotChannelInput, "approximation", effects="reads_files")
def nvfp4_hot_channels(inputs: HotChannelInput) -> HotChannelOutput:
    """Persistent hot-channel detection over a window of steps (an approximation of the paper's
    analysis: a channel is hot at a step above hot_factor x the step's median channel magnitude, and
    persistent when hot in at least `persistence` of the steps; rarer hot steps are transient spikes)."""
    return detect_hot_channels(inputs.stats(), inputs.hot_factor, inputs.persistence)


class PatchInput(BaseModel):
    activations: ArrayInput
    weights: ArrayInput
    hot_channels: list[int] = Field(min_length=1, max_length=100_000)

    @model_validator(mode="after")
    def _check(self) -> PatchInput:
        if any(c < 0 for c in self.hot_channels):
            raise ValueError("hot channel indices must be >= 0")
        self.hot_channels = sorted(set(self.hot_channels))
        return self


class PatchOutput(BaseModel):
    error_quantised: float
    """||exact - quantised|| / ||exact|| (absolute error when the exact product is zero)."""
    error_patched: float
    error_reduction: float | None
    """1 - patched / quantised error; None when quantisation was already exact (nothing to reduce)."""


def hot_channel_patch(x: np.ndarray, w: np.ndarray, hot: list[int]) -> PatchOutput:
    if x.shape[1] != w.shape[0]:
        raise InputError(f"activations {x.shape} and weights {w.shape} do not multiply")
    if x.shape[0] * w.shape[1] > MAX_ELEMENTS or x.shape[0] * x.shape[1] * w.shape[1] > MAX_FLOPS:
        raise InputError(f"activations {x.shape} x weights {w.shape} is too large a product for one call")
    if max(hot) >= x.shape[1]:
        raise InputError(f"hot channel {max(hot)} is out of range for {x.shape[1]} channels")
    exact = x @ w
    xq, wq = nvfp4_quantize(x)[0], nvfp4_quantize(w.T)[0].T
    quantised = xq @ wq
    # Hot channels inflate the scale of every block they sit in, crushing their neighbours. Quantise
    # the activations with the hot channels taken out, and carry the hot channels in high precision.
    cold = x.copy()
    cold[:, hot] = 0.0
    patched = nvfp4_quantize(cold)[0] @ wq + x[:, hot] @ wq[hot, :]
    reference = float(np.linalg.norm(exact))
    if reference == 0.0:  # a zero product: relative error is undefined, report absolute error
        reference = 1.0
    before = float(np.linalg.norm(exact - quantised)) / reference
    after = float(np.linalg.norm(exact - patched)) / reference
    reduction = None if before == 0.0 else 1 - after / before
    return PatchOutput(error_quantised=before, error_patched=after, error_reduction=reduction)


@tool("nvfp4_hot_channel_patch", PatchInput, "approximation", effects="reads_files")
def nvfp4_hot_channel_patch(inputs: PatchInput) -> PatchOutput:
    """The hot-channel patch (an approximation of the paper's fix on one matmul): the hot activation
    channels are taken out of the NVFP4 blocks (so they no longer inflate their neighbours' block
    scales) and re-injected in high precision; relative output errors before and after."""
    return hot_channel_patch(inputs.activations.load(), inputs.weights.load(), inputs.hot_channels)
