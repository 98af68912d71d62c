"""LB-BSP: semi-dynamic load balancing of stragglers in synchronous data-parallel training.

At each barrier, worker batch sizes are resized so all workers finish together while the global
batch stays fixed. CPU rule: x_i = X·v̂_i / Σv̂ with v̂ an EMA-predicted speed (samples/s). GPU rule:
a common target time found by bisection over profiled time-vs-batch curves, each worker capped by
its memory limit.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from agents.tools.registry import tool
from agents.tools.validation import finite_array


def split_integer(total: int, shares: np.ndarray, caps: np.ndarray | None = None) -> np.ndarray:
    """Integers proportional to ``shares`` that add up to ``total`` (largest remainders), within caps."""
    raw = total * shares / shares.sum()
    sizes = np.floor(raw).astype(int)
    order = np.argsort(-(raw - sizes), kind="stable")
    for i in order[: total - sizes.sum()]:
        sizes[i] += 1
    if caps is not None:
        sizes = np.minimum(sizes, caps)
        while sizes.sum() < total:  # hand what the caps cut off to workers with room, fastest first
            room = np.where(sizes < caps)[0]
            if room.size == 0:
                raise ValueError(f"memory caps {caps.tolist()} cannot hold a global batch of {total}")
            sizes[room[np.argmax(shares[room])]] += 1
    return sizes


def ema_speeds(batch_history: np.ndarray, time_history: np.ndarray, smoothing: float) -> np.ndarray:
    """Per-worker speed predicted by an exponential moving average over past iterations (oldest first)."""
    speeds = batch_history / time_history
    weights = (1 - smoothing) ** np.arange(speeds.shape[1])[::-1]
    return (speeds * weights).sum(axis=1) / weights.sum()


class Profile(BaseModel):
    batches: list[float] = Field(min_length=2, description="batch sizes profiled, increasing")
    seconds: list[float] = Field(min_length=2, description="iteration time at each profiled batch size")
    memory_cap: int = Field(gt=0, description="largest batch that fits in this worker's memory")

    @model_validator(mode="after")
    def _check(self) -> Profile:
        batches, seconds = finite_array(self.batches, "batches"), finite_array(self.seconds, "seconds")
        if batches.shape != seconds.shape:
            raise ValueError("profile batches and seconds must have the same length")
        if np.any(np.diff(batches) <= 0) or np.any(np.diff(seconds) < 0) or np.any(seconds <= 0):
            raise ValueError("profiles need increasing batch sizes and non-decreasing positive times")
        return self


class BatchSizeInput(BaseModel):
    global_batch: int = Field(gt=0)
    mode: Literal["cpu", "gpu"] = "cpu"
    batch_history: list[list[float]] | None = Field(None, description="cpu: per worker, batch sizes of past iterations")
    time_history: list[list[float]] | None = Field(None, description="cpu: per worker, seconds of past iterations")
    smoothing: float = Field(0.5, gt=0, le=1, description="EMA weight of the newest iteration")
    profiles: list[Profile] | None = Field(None, description="gpu: per worker time-vs-batch curve and memory cap")

    @model_validator(mode="after")
    def _check(self) -> BatchSizeInput:
        if self.mode == "cpu":
            if self.batch_history is None or self.time_history is None:
                raise ValueError("cpu mode needs batch_history and time_history")
            batches = finite_array(self.batch_history, "batch_history", ndim=2)
            times = finite_array(self.time_history, "time_history", ndim=2)
            if batches.shape != times.shape:
                raise ValueError(f"batch_history {batches.shape} and time_history {times.shape} differ in shape")
            if np.any(batches <= 0) or np.any(times <= 0):
                raise ValueError("batch sizes and times must be positive")
        elif not self.profiles:
            raise ValueError("gpu mode needs one profile per worker")
        return self


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
        raise ValueError(f"memory caps {[p.memory_cap for p in profiles]} cannot hold a global batch of {total}")
    for _ in range(60):  # bisection on the common finish time
        middle = (low + high) / 2
        low, high = (middle, high) if batch_at(middle).sum() < total else (low, middle)
    caps = np.array([p.memory_cap for p in profiles])
    return split_integer(total, batch_at(high), caps)


def _gpu_time(profile: Profile, batch: float) -> float:
    return float(np.interp(batch, profile.batches, profile.seconds))


@tool("lbbsp_batch_sizes", BatchSizeInput, "faithful")
def lbbsp_batch_sizes(inputs: BatchSizeInput) -> BatchSizeOutput:
    """LB-BSP batch sizing (faithful to the paper's CPU rule with an EMA speed predictor and its GPU
    rule of bisection over profiled time curves with memory caps): worker batch sizes that sum to the
    global batch and equalise predicted finish times, with the predicted gap against an equal split."""
    if inputs.mode == "cpu":
        speeds = ema_speeds(np.asarray(inputs.batch_history), np.asarray(inputs.time_history), inputs.smoothing)
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
    workers: int = Field(8, gt=1)
    global_batch: int = Field(512, gt=0)
    iterations: int = Field(100, gt=0)
    speed_spread: float = Field(3.0, ge=1, description="ratio of the fastest to the slowest mean speed")
    noise: float = Field(0.1, ge=0, lt=1, description="relative per-iteration speed noise")
    seed: int = 0


class SimulationOutput(BaseModel):
    bsp_mean_iteration_seconds: float
    lbbsp_mean_iteration_seconds: float
    speedup: float


@tool("lbbsp_simulate", SimulationInput, "approximation")
def lbbsp_simulate(inputs: SimulationInput) -> SimulationOutput:
    """BSP vs LB-BSP iteration times on simulated heterogeneous workers (an approximation: speeds are
    synthetic, log-uniform over the spread with Gaussian noise per iteration; LB-BSP resizes batches
    each iteration from the EMA of observed speeds). Iteration time is the slowest worker's time."""
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
        predicted = speeds[step] if step == 0 else 0.5 * speeds[step] + 0.5 * predicted
    return SimulationOutput(
        bsp_mean_iteration_seconds=float(bsp.mean()),
        lbbsp_mean_iteration_seconds=float(lb.mean()),
        speedup=float(bsp.mean() / lb.mean()),
    )
