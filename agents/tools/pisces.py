"""Pisces: asynchronous FL with guided participant selection.

Client utility = statistical utility × staleness factor, where the statistical utility comes from the
losses of the client's samples (|B|·sqrt(mean loss²), as in Oort) and the staleness factor is
1/(mean recent staleness + 1)^β. Selection explores unexplored clients with a share drawn from
Binomial(slots, ε), ε decaying ×0.98 to a floor of 0.3, and exploits the highest utilities otherwise.
Aggregation weights each update by its client's samples and 1/(staleness + 1)^β.
"""

from __future__ import annotations

import heapq
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from agents.tools import fl_common as fl
from agents.tools.registry import tool
from agents.tools.validation import finite_array


def statistical_utility(losses: np.ndarray) -> float:
    return float(len(losses) * np.sqrt((losses**2).mean())) if len(losses) else 0.0


def staleness_factor(recent_staleness: np.ndarray, beta: float) -> float:
    mean = float(recent_staleness.mean()) if len(recent_staleness) else 0.0
    return 1.0 / (mean + 1.0) ** beta


def aggregation_weights(samples: np.ndarray, staleness: np.ndarray, beta: float, renormalise: bool) -> np.ndarray:
    weights = samples / samples.sum() / (staleness + 1.0) ** beta
    return weights / weights.sum() if renormalise else weights


class ClientRecord(BaseModel):
    losses: list[float] = Field(description="losses of the client's samples in its last round")
    recent_staleness: list[float] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> ClientRecord:
        if self.losses and np.any(finite_array(self.losses, "losses") < 0):
            raise ValueError("losses must be >= 0")
        if self.recent_staleness and np.any(finite_array(self.recent_staleness, "recent_staleness") < 0):
            raise ValueError("staleness must be >= 0")
        return self


class UtilityInput(BaseModel):
    clients: list[ClientRecord] = Field(min_length=1)
    beta: float = Field(0.5, ge=0)


class UtilityOutput(BaseModel):
    utilities: list[float]
    ranking: list[int]


@tool("pisces_client_utility", UtilityInput, "faithful")
def pisces_client_utility(inputs: UtilityInput) -> UtilityOutput:
    """Pisces client utilities (faithful: statistical utility from sample losses times the staleness
    factor 1/(mean recent staleness + 1)^beta) and the clients ranked best first."""
    utilities = np.array([
        statistical_utility(np.asarray(c.losses)) * staleness_factor(np.asarray(c.recent_staleness), inputs.beta)
        for c in inputs.clients
    ])  # fmt: skip
    return UtilityOutput(utilities=utilities.round(8).tolist(), ranking=np.argsort(-utilities, kind="stable").tolist())


class AggregateInput(BaseModel):
    samples: list[float] = Field(min_length=1)
    staleness: list[float] = Field(min_length=1)
    beta: float = Field(0.5, ge=0)
    renormalise: bool = True

    @model_validator(mode="after")
    def _check(self) -> AggregateInput:
        samples, staleness = finite_array(self.samples, "samples"), finite_array(self.staleness, "staleness")
        if samples.shape != staleness.shape:
            raise ValueError("samples and staleness need one entry per update")
        if np.any(samples <= 0) or np.any(staleness < 0):
            raise ValueError("samples must be > 0 and staleness >= 0")
        return self


class AggregateOutput(BaseModel):
    weights: list[float]


@tool("pisces_aggregation_weights", AggregateInput, "faithful")
def pisces_aggregation_weights(inputs: AggregateInput) -> AggregateOutput:
    """Staleness-weighted aggregation weights (faithful: sample share / (staleness + 1)^beta,
    renormalised to sum to one or not)."""
    weights = aggregation_weights(np.asarray(inputs.samples), np.asarray(inputs.staleness), inputs.beta,
                                  inputs.renormalise)  # fmt: skip
    return AggregateOutput(weights=weights.round(10).tolist())


class SimulationInput(BaseModel):
    clients: int = Field(30, ge=4)
    in_flight: int = Field(8, ge=1, description="clients training at once")
    min_updates: int = Field(4, ge=1, description="updates per asynchronous aggregation")
    staleness_bound: int = Field(6, ge=0)
    target_accuracy: float = Field(0.85, gt=0, le=1)
    max_aggregations: int = Field(150, gt=0)
    speed_tail: float = Field(1.2, gt=0, description="Pareto shape of client speeds: smaller, heavier stragglers")
    beta: float = Field(0.5, ge=0)
    epsilon: float = Field(0.9, ge=0, le=1)
    epsilon_decay: float = Field(0.98, gt=0, le=1)
    epsilon_floor: float = Field(0.3, ge=0, le=1)
    learning_rate: float = Field(0.5, gt=0)
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> SimulationInput:
        if self.in_flight > self.clients or self.min_updates > self.in_flight:
            raise ValueError("need min_updates <= in_flight <= clients")
        return self


class SimulationOutput(BaseModel):
    time_to_target: dict[str, float | None]
    """Simulated seconds until the test accuracy first reaches the target (None: never)."""
    final_accuracy: dict[str, float]
    aggregations: dict[str, int]


Mode = Literal["sync", "async", "pisces"]


def _run(mode: Mode, inputs: SimulationInput, data: fl.FederatedData, durations: np.ndarray) -> tuple:
    rng = np.random.default_rng((inputs.seed, ["sync", "async", "pisces"].index(mode)))
    sizes = np.array([len(y) for y in data.client_y], dtype=float)
    params, version, now = np.zeros(fl.PARAMETERS), 0, 0.0
    utility = np.zeros(inputs.clients)
    explored = np.zeros(inputs.clients, dtype=bool)
    staleness_log: list[list[int]] = [[] for _ in range(inputs.clients)]
    epsilon = inputs.epsilon
    time_to_target, aggregations = None, 0

    def train(client: int, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        local = fl.local_train(base, data.client_x[client], data.client_y[client], epochs=1, lr=inputs.learning_rate,
                               batch=32, rng=rng)  # fmt: skip
        return local - base, fl.losses(local, data.client_x[client], data.client_y[client])

    def select(idle: list[int], slots: int) -> list[int]:
        nonlocal epsilon
        if mode != "pisces":
            return rng.choice(idle, size=min(slots, len(idle)), replace=False).tolist()
        unexplored = [c for c in idle if not explored[c]]
        explore = min(int(rng.binomial(slots, epsilon)), len(unexplored))
        epsilon = max(inputs.epsilon_floor, epsilon * inputs.epsilon_decay)
        picked = rng.choice(unexplored, size=explore, replace=False).tolist() if explore else []
        scores = {c: utility[c] * staleness_factor(np.array(staleness_log[c][-5:]), inputs.beta)
                  for c in idle if c not in picked}  # fmt: skip
        picked += sorted(scores, key=lambda c: -scores[c])[: slots - len(picked)]
        return picked

    if mode == "sync":
        while aggregations < inputs.max_aggregations and time_to_target is None:
            chosen = select(list(range(inputs.clients)), inputs.in_flight)
            results = [train(c, params) for c in chosen]
            weights = sizes[chosen] / sizes[chosen].sum()
            params = params + weights @ np.stack([u for u, _ in results])
            now += durations[chosen].max() * rng.uniform(0.9, 1.1)
            aggregations += 1
            if fl.accuracy(params, data.test_x, data.test_y) >= inputs.target_accuracy:
                time_to_target = now
        return time_to_target, fl.accuracy(params, data.test_x, data.test_y), aggregations

    running: list[tuple[float, int, int]] = []  # (finish time, client, version it started from)
    bases: dict[int, np.ndarray] = {}
    for client in select(list(range(inputs.clients)), inputs.in_flight):
        heapq.heappush(running, (durations[client] * rng.uniform(0.9, 1.1), client, version))
        bases[client] = params
    buffer: list[tuple[int, np.ndarray, int]] = []
    while aggregations < inputs.max_aggregations and time_to_target is None:
        now, client, started = heapq.heappop(running)
        update, sample_losses = train(client, bases.pop(client))
        explored[client] = True
        utility[client] = statistical_utility(sample_losses)
        buffer.append((client, update, version - started))
        if len(buffer) >= inputs.min_updates:
            fresh = [(c, u, s) for c, u, s in buffer if s <= inputs.staleness_bound]
            for c, _, s in buffer:
                staleness_log[c].append(s)
            if fresh:
                clients = np.array([c for c, _, _ in fresh])
                staleness = np.array([s for _, _, s in fresh], dtype=float)
                beta = inputs.beta if mode == "pisces" else 0.0
                weights = aggregation_weights(sizes[clients], staleness, beta, renormalise=True)
                params = params + weights @ np.stack([u for _, u, _ in fresh])
                version += 1
                aggregations += 1
                if fl.accuracy(params, data.test_x, data.test_y) >= inputs.target_accuracy:
                    time_to_target = now
            buffer = []
        busy = {c for _, c, _ in running}
        idle = [c for c in range(inputs.clients) if c not in busy and c != client] + [client]
        for chosen in select(idle, inputs.in_flight - len(running)):
            heapq.heappush(running, (now + durations[chosen] * rng.uniform(0.9, 1.1), chosen, version))
            bases[chosen] = params
    return time_to_target, fl.accuracy(params, data.test_x, data.test_y), aggregations


@tool("pisces_simulate", SimulationInput, "approximation")
def pisces_simulate(inputs: SimulationInput) -> SimulationOutput:
    """Event-driven asynchronous FL on digits comparing synchronous FedAvg, plain asynchronous FL and
    Pisces on time-to-accuracy (an approximation: softmax regression instead of the paper's models,
    client speeds drawn from a seeded Pareto distribution, simulated seconds instead of wall time)."""
    data = fl.digits_clients(inputs.clients, inputs.seed, skew=1.0)
    rng = np.random.default_rng(inputs.seed)
    speeds = rng.pareto(inputs.speed_tail, inputs.clients) + 0.05
    durations = np.array([len(y) for y in data.client_y]) / 50.0 / speeds
    results = {mode: _run(mode, inputs, data, durations) for mode in ("sync", "async", "pisces")}
    return SimulationOutput(
        time_to_target={m: (round(r[0], 3) if r[0] is not None else None) for m, r in results.items()},
        final_accuracy={m: round(r[1], 4) for m, r in results.items()},
        aggregations={m: r[2] for m, r in results.items()},
    )
