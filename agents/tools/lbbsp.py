"""LB-BSP: semi-dynamic load balancing of stragglers in synchronous data-parallel training.

At each barrier, worker batch sizes are resized so all workers finish together while the global
batch stays fixed. CPU rule: x_i = X·v̂_i / Σv̂ with v̂ an EMA-predicted speed (samples/s; the paper
predicts with a NARX model, an EMA is our simpler stand-in). GPU rule: a common target time found by
bisection over profiled time-vs-batch curves, each worker capped by its memory limit.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from thoughtgraph.agents.tools.arrays import Matrix, as_array, check_array_argument
from thoughtgraph.agents.tools.registry import tool
from thoughtgraph.agents.tools.validation import InputError, finite_array

MAX_BATCH = 10**9
MAX_SECONDS, MIN_SECONDS = 1e9, 1e-9


def _largest_remainders(total: int, shares: np.ndarray) -> np.ndarray:
    shares = shares / shares.max() if shares.max() > 0 else np.ones_like(shares)
    raw = total * (shares / shares.sum())
    sizes = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - sizes), kind="stable")
    sizes[order[: total - int(sizes.sum())]] += 1
    return sizes


def split_integer(total: int, shares: np.ndarray, caps: np.ndarray | None = None) -> np.ndarray:
    """Integers proportional to ``shares`` that add up to ``total`` (largest remainders), within caps:
    what the caps cut off goes to the workers with room, in proportion to their shares (each round
    fills the deficit or saturates a worker, so at most one round per worker)."""
    sizes = _largest_remainders(total, shares)
    if caps is None:
        return sizes
    caps = np.asarray(caps, dtype=np.int64)
    if int(caps.sum()) < total:
        raise InputError(f"memory caps {caps.tolist()[:20]} cannot hold a global batch of {total}")
    sizes = np.minimum(sizes, caps)
    while (deficit := total - int(sizes.sum())) > 0:
        room = np.where(sizes < caps)[0]
        extra = np.zeros_like(sizes)
        extra[room] = np.minimum(_largest_remainders(deficit, shares[room]), caps[room] - sizes[room])
        if not extra.any():  # shares of zero: fill in order
            extra[room[0]] = min(deficit, int(caps[room[0]] - sizes[room[0]]))
        sizes += extra
    return sizes


def ema_speeds(batch_history: np.ndarray, time_history: np.ndarray, smoothing: float) -> np.ndarray:
    """Per-worker speed predicted by the exponential moving average v̂ ← α·v + (1 − α)·v̂ over past
    iterations (oldest first), started at the oldest observation: the newest iteration weighs α, the
    one before α(1 − α), and so on, the oldest keeping the remaining (1 − α)^(n−1)."""
    speeds = batch_history / time_history
    predicted = speeds[:, 0]
    for column in range(1, speeds.shape[1]):
        predicted = smoothing * speeds[:, column] + (1 - smoothing) * predicted
    return predicted


class Profile(BaseModel):
    batches: list[float] = Field(min_length=2, max_length=1000, description="batch sizes profiled, increasing")
    seconds: list[float] = Field(min_length=2, max_length=1000, description="iteration time at each batch size")
    memory_cap: int = Field(gt=0, le=MAX_BATCH, description="largest batch that fits in this worker's memory")

    @model_validator(mode="after")
    def _check(self) -> Profile:
        batches = finite_array(self.batches, "batches", max_abs=MAX_BATCH)
        seconds = finite_array(self.seconds, "seconds", max_abs=MAX_SECONDS)
        if batches.shape != seconds.shape:
            raise ValueError("profile batches and seconds must have the same length")
        if np.any(np.diff(batches) <= 0) or np.any(np.diff(seconds) < 0) or np.any(seconds <= 0):
            raise ValueError("profiles need increasing batch sizes and non-decreasing positive times")
        return self


class BatchSizeInput(BaseModel):
    global_batch: int = Field(gt=0, le=MAX_BATCH)
    mode: Literal["cpu", "gpu"] = "cpu"
    batch_history: Matrix | None = Field(
        None, description="cpu: per worker, batch sizes of past iterations (oldest first), or a tensor file"
    )
    time_history: Matrix | None = Field(
        None, description="cpu: per worker, seconds of past iterations (oldest first), or a tensor file"
    )
    smoothing: float = Field(0.5, gt=0, le=1, description="EMA weight α of the newest iteration")
    profiles: list[Profile] | None = Field(
        None, max_length=10_000, description="gpu: per worker time-vs-batch curve and memory cap"
    )

    @model_validator(mode="after")
    def _check(self) -> BatchSizeInput:
        if self.mode == "cpu":
            if self.batch_history is None or self.time_history is None:
                raise ValueError("cpu mode needs batch_history and time_history")
            check_array_argument(self.batch_history, "batch_history", 2, MAX_BATCH)
            check_array_argument(self.time_history, "time_history", 2, MAX_SECONDS)
        elif not self.profiles:
            raise ValueError("gpu mode needs one profile per worker")
        return self

    def histories(self) -> tuple[np.ndarray, np.ndarray]:
        batches = as_array(self.batch_history, "batch_history", 2, MAX_BATCH)
        times = as_array(self.time_history, "time_history", 2, MAX_SECONDS)
        if batches.shape != times.shape:
            raise InputError(f"batch_history {batches.shape} and time_history {times.shape} differ in shape")
        if np.any(batches < 1) or np.any(times < MIN_SECONDS):
            raise InputError(f"batch sizes must be >= 1 and times >= {MIN_SECONDS:g} s")
        return batches, times


class BatchSizeOutput(BaseModel):
    batch_sizes: list[int]
    predicted_seconds: list[float]
    predicted_gap_seconds: float
    equal_split_gap_seconds: float


def _gpu_sizes(profiles: list[Profile], total: int) -> np.ndarray:
    def batch_at(time: float) -> np.ndarray:
        return np.array([min(p.memory_cap, np.interp(time, p.seconds, p.batches, right=np.inf)) for p in profiles])

    low, high = 0.0, max(p.seconds[-1] for p in profiles) * 4
    if batch_at(high).sum() < total:
        raise InputError(f"memory caps {[p.memory_cap for p in profiles]} cannot hold a global batch of {total}")
    for _ in range(60):  # bisection on the common finish time
        middle = (low + high) / 2
        low, high = (middle, high) if batch_at(middle).sum() < total else (low, middle)
    caps = np.array([p.memory_cap for p in profiles])
    return split_integer(total, batch_at(high), caps)


def _gpu_time(profile: Profile, batch: float) -> float:
    return float(np.interp(batch, profile.batches, profile.seconds))


@tool("lbbsp_batch_sizes", BatchSizeInput, "approximation", effects="reads_files")
def lbbsp_batch_sizes(inputs: BatchSizeInput) -> BatchSizeOutput:
    """LB-BSP batch sizing (an approximation: the paper's CPU rule x_i = X v_i / sum(v) and its GPU rule of
    bisection over profiled time curves with memory caps, as published, but the speed predictor is an
    EMA, v <- a v_new + (1 - a) v, where the paper uses a NARX model): worker batch sizes that sum to the
    global batch and equalise predicted finish times, with the predicted gap against an equal split."""
    if inputs.mode == "cpu":
        speeds = ema_speeds(*inputs.histories(), inputs.smoothing)
        sizes = split_integer(inputs.global_batch, speeds)
        equal = split_integer(inputs.global_batch, np.ones_like(speeds))
        times, equal_times = sizes / speeds, equal / speeds
    else:
        profiles = inputs.profiles or []
        sizes = _gpu_sizes(profiles, inputs.global_batch)
        equal = split_integer(inputs.global_batch, np.ones(len(profiles)))
        times = np.array([_gpu_time(p, b) for p, b in zip(profiles, sizes, strict=True)])
        equal_times = np.array([_gpu_time(p, b) for p, b in zip(profiles, equal, strict=True)])
    return BatchSizeOutput(
        batch_sizes=sizes.tolist(),
        predicted_seconds=times.round(6).tolist(),
        predicted_gap_seconds=float(times.max() - times.min()),
        equal_split_gap_seconds=float(equal_times.max() - equal_times.min()),
    )


class SimulationInput(BaseModel):
    workers: int = Field(8, gt=1, le=4096)
    global_batch: int = Field(512, gt=0, le=MAX_BATCH)
    iterations: int = Field(100, gt=0, le=100_000)
    speed_spread: float = Field(3.0, ge=1, le=1e6, description="ratio of the fastest to the slowest mean speed")
    noise: float = Field(0.1, ge=0, lt=1, description="relative per-iteration speed noise")
    smoothing: float = Field(0.5, gt=0, le=1, description="EMA weight α of the newest iteration")
    seed: int = Field(0, ge=0, le=2**32 - 1)

    @model_validator(mode="after")
    def _check(self) -> SimulationInput:
        if self.workers * self.iterations > 2_000_000:
            raise ValueError("workers x iterations is limited to 2,000,000")
        return self


class SimulationOutput(BaseModel):
    bsp_mean_iteration_seconds: float
    lbbsp_mean_iteration_seconds: float
    speedup: float


@tool("lbbsp_simulate", SimulationInput, "approximation")
def lbbsp_simulate(inputs: SimulationInput) -> SimulationOutput:
    """BSP vs LB-BSP iteration times on simulated heterogeneous workers (an approximation: speeds are
    synthetic, log-uniform over the spread with Gaussian noise per iteration; LB-BSP resizes batches
    each iteration from the EMA of observed speeds, weight `smoothing` on the newest). Iteration time
    is the slowest worker's time."""
    rng = np.random.default_rng(inputs.seed)
    mean_speed = np.exp(rng.uniform(0, np.log(inputs.speed_spread), inputs.workers)) * 100
    speeds = mean_speed * np.clip(
        1 + inputs.noise * rng.standard_normal((inputs.iterations, inputs.workers)), 0.05, None
    )
    equal = split_integer(inputs.global_batch, np.ones(inputs.workers))
    bsp = (equal / speeds).max(axis=1)
    predicted, lb = np.ones(inputs.workers), np.empty(inputs.iterations)
    for step in range(inputs.iterations):  # a loop over iterations, not tensor elements: each depends on the last
        sizes = split_integer(inputs.global_batch, predicted)
        lb[step] = (sizes / speeds[step]).max()
        alpha = inputs.smoothing
        predicted = speeds[step] if step == 0 else alpha * speeds[step] + (1 - alpha) * predicted
    return SimulationOutput(
        bsp_mean_iteration_seconds=float(bsp.mean()),
        lbbsp_mean_iteration_seconds=float(lb.mean()),
        speedup=float(bsp.mean() / lb.mean()),
    )
