"""Pisces: asynchronous FL with guided participant selection and adaptive aggregation pace.

Client utility = statistical utility × staleness factor, where the statistical utility comes from the losses of the
client's samples: by default |B|·sqrt(mean loss²), Oort's definition, which we read the paper as adopting (not
re-checked against the paper's text: no copy of it here); ``formula="plato"`` is Plato's client up to its strategy
refactor (``examples/client_selection/pisces/pisces_client.py`` at 60d6779a, Oct 2025), n·sqrt(sqrt(m)/n) with m an
exponential moving average (decay 0.01, from 0) of the per-batch mean losses in order and n the client's samples.
The two rank clients differently (100 samples at loss 1 against 1 sample at loss 200: [100, 200] against [3.162,
1.189]). Plato's current client (``pisces_client.py`` at a1c6765, ``formula="plato_current"``) is n·sqrt(q) with q
the moving average of the squared per-batch losses, seeded with the first: the paper's form over batch losses
instead of sample losses, ranking as the paper does. The staleness factor is 1/(mean recent staleness + 1)^β over
the client's last ``HISTORY_WINDOW`` updates. Selection explores unexplored clients with a share drawn from
Binomial(slots, ε), ε decaying ×0.98 to a floor of 0.3, and exploits the highest utilities otherwise. Aggregation
weighs each update by its client's sample share times the staleness factor, not renormalised, as the reference
(TL-System/plato's ``pisces_aggregation_strategy.py`` at 3b2a520, the same weights as ``pisces_server.py`` at
60d6779a); ``renormalise=True`` (ours) rescales the weights to sum to one.

Pace control (paper, section on bounding the progress gap): instead of aggregating a fixed number of updates, the
server aggregates every I = L_max / b simulated seconds, where L_max is the largest profiled latency among the
clients now training and b the staleness bound; in L_max seconds at most b aggregations happen, so no update
arrives more than about b versions stale and none is dropped.

β = 0.5 and the exploration schedule (ε = 0.9, decay 0.98, floor 0.3) are Plato's Pisces MNIST config's
(``pisces_MNIST_lenet5.toml`` at c94e628 and the .yml before it: staleness_factor, exploration_factor,
exploration_decaying_factor, min_explore_factor). Deviations, named: latency is profiled from each client's
expected round time, known to the server (the paper profiles latencies); the robustness extension (DBSCAN outlier
credits) is not simulated.
"""

from __future__ import annotations

import heapq
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from thoughtgraph.agents.tools import fl_common as fl
from thoughtgraph.agents.tools.registry import tool
from thoughtgraph.agents.tools.validation import finite_array

HISTORY_WINDOW = 5
MAX_STALENESS = 1e9


PLATO_LOSS_DECAY = 0.01


def statistical_utility(losses: np.ndarray, formula: str = "paper", samples: int | None = None) -> float:
    """``paper``: |B|·sqrt(mean loss²) over the sample losses; ``plato``: n·sqrt(sqrt(m)/n), m the moving average
    (from 0) of the per-batch losses (``losses`` in order); ``plato_current``: n·sqrt(q), q the moving average of
    the squared per-batch losses seeded with the first; n = ``samples`` (default: the number of losses)."""
    if not len(losses):
        return 0.0
    if formula == "plato_current":
        scale = float(np.abs(losses).max()) or 1.0  # the average of (l/s)^2, so large losses do not overflow
        average_square = None
        for loss in losses:
            square = (float(loss) / scale) ** 2
            average_square = square if average_square is None else (
                (1 - PLATO_LOSS_DECAY) * average_square + PLATO_LOSS_DECAY * square
            )  # fmt: skip
        return float((samples or len(losses)) * scale * np.sqrt(average_square))
    if formula == "plato":
        average = 0.0
        for loss in losses:
            average = (1 - PLATO_LOSS_DECAY) * average + PLATO_LOSS_DECAY * float(loss)
        n = samples or len(losses)
        return float(n * np.sqrt(np.sqrt(average) / n))
    scale = float(np.abs(losses).max()) or 1.0  # sqrt(mean((l/s)^2)) * s: no overflow for large losses
    return float(len(losses) * scale * np.sqrt(((losses / scale) ** 2).mean()))


def staleness_factor(recent_staleness: np.ndarray, beta: float) -> float:
    """1 / (mean of the last HISTORY_WINDOW staleness values + 1)^beta; 1 without history."""
    recent = recent_staleness[-HISTORY_WINDOW:]
    mean = float(recent.mean()) if len(recent) else 0.0
    return float(np.exp(-beta * np.log1p(mean)))


def aggregation_weights(samples: np.ndarray, staleness: np.ndarray, beta: float, renormalise: bool) -> np.ndarray:
    """Sample share × 1/(staleness + 1)^beta (as exp(-beta·log1p), so huge staleness underflows to 0
    instead of overflowing); samples are divided by their maximum first, so their sum stays finite."""
    relative = samples / samples.max()
    weights = relative / relative.sum() * np.exp(-beta * np.log1p(staleness))
    if not renormalise:
        return weights
    if weights.sum() > 0:
        return weights / weights.sum()
    log_weights = np.log(relative) - beta * np.log1p(staleness)  # every factor underflowed: compare in logs
    weights = np.exp(log_weights - log_weights.max())
    return weights / weights.sum()


class ClientRecord(BaseModel):
    losses: list[float] = Field(
        description="losses of the client's samples in its last round (formula plato: its per-batch mean losses, "
        "in order)", max_length=100_000,
    )  # fmt: skip
    samples: int | None = Field(None, ge=1, le=10**12, description="the client's sample count (formula plato)")
    recent_staleness: list[float] = Field(default_factory=list, max_length=10_000)

    @model_validator(mode="after")
    def _check(self) -> ClientRecord:
        if self.losses and np.any(finite_array(self.losses, "losses", max_abs=1e100) < 0):
            raise ValueError("losses must be >= 0")
        if self.recent_staleness and np.any(
            finite_array(self.recent_staleness, "recent_staleness", max_abs=MAX_STALENESS) < 0
        ):
            raise ValueError("staleness must be >= 0")
        return self


class UtilityInput(BaseModel):
    clients: list[ClientRecord] = Field(min_length=1, max_length=100_000)
    beta: float = Field(0.5, ge=0, le=10)
    formula: Literal["paper", "plato", "plato_current"] = "paper"


class UtilityOutput(BaseModel):
    utilities: list[float]
    ranking: list[int]


@tool("pisces_client_utility", UtilityInput, "faithful")
def pisces_client_utility(inputs: UtilityInput) -> UtilityOutput:
    """Pisces client utilities (faithful to the paper's statistical utility by default, to Plato's earlier client
    with formula="plato" and to its current one with formula="plato_current"; times the staleness factor
    1/(mean of the last 5 staleness values + 1)^beta, as all three) and the clients ranked best first."""
    utilities = np.array([
        statistical_utility(np.asarray(c.losses), inputs.formula, c.samples)
        * staleness_factor(np.asarray(c.recent_staleness), inputs.beta)
        for c in inputs.clients
    ])  # fmt: skip
    return UtilityOutput(utilities=utilities.round(8).tolist(), ranking=np.argsort(-utilities, kind="stable").tolist())


class AggregateInput(BaseModel):
    samples: list[float] = Field(min_length=1, max_length=100_000)
    staleness: list[float | list[float]] = Field(
        min_length=1, max_length=100_000,
        description="per update, its staleness, or its client's recent staleness values (newest last; the "
        "mean of the last 5 is used, as in the reference)",
    )  # fmt: skip
    beta: float = Field(0.5, ge=0, le=10)
    renormalise: bool = False
    """False: the reference's weights; True (ours): rescaled to sum to one."""

    @model_validator(mode="after")
    def _check(self) -> AggregateInput:
        samples = finite_array(self.samples, "samples")
        if len(self.staleness) != samples.shape[0]:
            raise ValueError("samples and staleness need one entry per update")
        for index, value in enumerate(self.staleness):
            if np.any(finite_array(value, f"staleness[{index}]", max_abs=MAX_STALENESS) < 0):
                raise ValueError("staleness must be >= 0")
        if np.any(samples <= 0):
            raise ValueError("samples must be > 0")
        return self

    def mean_staleness(self) -> np.ndarray:
        return np.array([np.mean(np.atleast_1d(s)[-HISTORY_WINDOW:]) for s in self.staleness], dtype=float)


class AggregateOutput(BaseModel):
    weights: list[float]


@tool("pisces_aggregation_weights", AggregateInput, "faithful")
def pisces_aggregation_weights(inputs: AggregateInput) -> AggregateOutput:
    """Staleness-weighted aggregation weights (faithful to the reference: sample share / (mean recent staleness +
    1)^beta, not renormalised); renormalise=True (ours) rescales them to sum to one."""
    weights = aggregation_weights(np.asarray(inputs.samples, dtype=float), inputs.mean_staleness(), inputs.beta,
                                  inputs.renormalise)  # fmt: skip
    return AggregateOutput(weights=weights.round(10).tolist())


class SimulationInput(BaseModel):
    clients: int = Field(30, ge=4, le=500)
    in_flight: int = Field(8, ge=1, le=100, description="clients training at once")
    min_updates: int = Field(4, ge=1, description="updates per aggregation of plain asynchronous FL (FedBuff)")
    staleness_bound: int = Field(6, ge=1, le=100, description="b: Pisces paces aggregation to bound staleness by b; "
                                 "plain async drops updates staler than b")  # fmt: skip
    target_accuracy: float = Field(0.85, gt=0, le=1)
    max_aggregations: int = Field(150, gt=0, le=2000, description="per mode; also caps client rounds at "
                                  "in_flight x max_aggregations")  # fmt: skip
    speed_tail: float = Field(1.2, ge=0.1, le=100, description="Pareto shape of client speeds: smaller, heavier "
                              "stragglers")  # fmt: skip
    beta: float = Field(0.5, ge=0, le=10)
    epsilon: float = Field(0.9, ge=0, le=1)
    epsilon_decay: float = Field(0.98, gt=0, le=1)
    epsilon_floor: float = Field(0.3, ge=0, le=1)
    learning_rate: float = Field(0.5, gt=0, le=100)
    seed: int = Field(0, ge=0, le=2**32 - 1)

    @model_validator(mode="after")
    def _check(self) -> SimulationInput:
        if self.in_flight > self.clients or self.min_updates > self.in_flight:
            raise ValueError("need min_updates <= in_flight <= clients")
        if self.in_flight * self.max_aggregations > 20_000:
            raise ValueError("in_flight x max_aggregations is limited to 20,000 client rounds per mode")
        return self


class SimulationOutput(BaseModel):
    time_to_target: dict[str, float | None]
    """Simulated seconds until the test accuracy first reaches the target (None: never)."""
    final_accuracy: dict[str, float]
    aggregations: dict[str, int]
    max_staleness: dict[str, int]
    """Largest staleness (in model versions) of any update the server received."""
    local_rounds: dict[str, int]
    """Client training rounds run; a mode stops at in_flight x max_aggregations of them."""
    diverged: dict[str, bool]
    """The model blew up (non-finite or > 1e100 parameters); the mode stopped at its last finite model."""


Mode = Literal["sync", "async", "pisces"]
MODES: tuple[Mode, ...] = ("sync", "async", "pisces")


class _Server:
    """State of one simulated run: the model, the clock, the clients' records."""

    def __init__(self, mode: Mode, inputs: SimulationInput, data: fl.FederatedData, durations: np.ndarray) -> None:
        self.mode, self.inputs, self.data, self.durations = mode, inputs, data, durations
        self.rng = np.random.default_rng((inputs.seed, MODES.index(mode)))
        self.sizes = np.array([len(y) for y in data.client_y], dtype=float)
        self.params, self.version, self.now = np.zeros(fl.PARAMETERS), 0, 0.0
        self.utility = np.zeros(inputs.clients)
        self.explored = np.zeros(inputs.clients, dtype=bool)
        self.staleness_log: list[list[int]] = [[] for _ in range(inputs.clients)]
        self.factor = np.ones(inputs.clients)  # staleness factor of each client's recent history
        self.epsilon = inputs.epsilon
        self.time_to_target: float | None = None
        self.aggregations = self.max_staleness = self.local_rounds = 0
        self.diverged = False

    def round_time(self, client: int) -> float:
        return float(self.durations[client] * self.rng.uniform(0.9, 1.1))

    def train(self, client: int, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.local_rounds += 1
        x, y = self.data.client_x[client], self.data.client_y[client]
        local = fl.local_train(base, x, y, epochs=1, lr=self.inputs.learning_rate, batch=32, rng=self.rng)
        return local - base, fl.losses(local, x, y)

    def select(self, idle: list[int], slots: int) -> list[int]:
        if self.mode != "pisces":
            return self.rng.choice(idle, size=min(slots, len(idle)), replace=False).tolist()
        unexplored = [c for c in idle if not self.explored[c]]
        explore = min(int(self.rng.binomial(slots, self.epsilon)), len(unexplored))
        self.epsilon = max(self.inputs.epsilon_floor, self.epsilon * self.inputs.epsilon_decay)
        picked = self.rng.choice(unexplored, size=explore, replace=False).tolist() if explore else []
        rest = np.setdiff1d(np.asarray(idle), np.asarray(picked, dtype=int), assume_unique=True)
        scores = self.utility[rest] * self.factor[rest]
        return picked + rest[np.argsort(-scores, kind="stable")[: slots - len(picked)]].tolist()

    def apply(self, step: np.ndarray) -> None:
        with np.errstate(over="ignore", invalid="ignore"):
            params = self.params + step
        if not np.all(np.isfinite(params)) or np.abs(params).max() > 1e100:
            self.diverged = True
            return
        self.params = params
        self.version += 1
        self.aggregations += 1
        if self.time_to_target is None and self.accuracy() >= self.inputs.target_accuracy:
            self.time_to_target = self.now

    def accuracy(self) -> float:
        return fl.accuracy(self.params, self.data.test_x, self.data.test_y)

    def done(self) -> bool:
        return (self.aggregations >= self.inputs.max_aggregations or self.time_to_target is not None or self.diverged
                or self.local_rounds >= self.inputs.in_flight * self.inputs.max_aggregations)  # fmt: skip


def _run_sync(server: _Server) -> None:
    while not server.done():
        chosen = server.select(list(range(server.inputs.clients)), server.inputs.in_flight)
        updates = np.stack([server.train(c, server.params)[0] for c in chosen])
        server.now += max(server.round_time(c) for c in chosen)
        server.apply((server.sizes[chosen] / server.sizes[chosen].sum()) @ updates)


def _aggregate_buffer(server: _Server, buffer: list[tuple[int, np.ndarray, int]]) -> None:
    clients = np.array([c for c, _, _ in buffer])
    updates = np.stack([u for _, u, _ in buffer])
    if server.mode == "pisces":  # the reference: sample share x staleness factor of the client's recent history
        share = server.sizes[clients] / server.sizes[clients].sum()
        server.apply((share * server.factor[clients]) @ updates)
        return
    fresh = [i for i, (_, _, s) in enumerate(buffer) if s <= server.inputs.staleness_bound]
    if fresh:
        server.apply((server.sizes[clients[fresh]] / server.sizes[clients[fresh]].sum()) @ updates[fresh])


def _pace(server: _Server, running: list[tuple[float, int, int]]) -> float:
    """Pisces' aggregation interval: the slowest running client's profiled latency / the staleness bound."""
    return max(server.durations[c] for _, c, _ in running) / server.inputs.staleness_bound


def _run_async(server: _Server) -> None:
    inputs = server.inputs
    running: list[tuple[float, int, int]] = []  # (finish time, client, version it started from)
    bases: dict[int, np.ndarray] = {}

    def launch(clients: list[int]) -> None:
        for client in clients:
            heapq.heappush(running, (server.now + server.round_time(client), client, server.version))
            bases[client] = server.params

    launch(server.select(list(range(inputs.clients)), inputs.in_flight))
    buffer: list[tuple[int, np.ndarray, int]] = []
    last_aggregation = 0.0
    while not server.done() and running:
        next_tick = last_aggregation + _pace(server, running) if server.mode == "pisces" else np.inf
        if next_tick < running[0][0]:
            server.now = last_aggregation = next_tick
            if buffer:
                _aggregate_buffer(server, buffer)
                buffer = []
            continue
        server.now, client, started = heapq.heappop(running)
        update, sample_losses = server.train(client, bases.pop(client))
        server.explored[client] = True
        server.utility[client] = statistical_utility(sample_losses)
        staleness = server.version - started
        server.max_staleness = max(server.max_staleness, staleness)
        server.staleness_log[client].append(staleness)
        server.factor[client] = staleness_factor(np.array(server.staleness_log[client], dtype=float), inputs.beta)
        buffer.append((client, update, staleness))
        if server.mode == "async" and len(buffer) >= inputs.min_updates:
            _aggregate_buffer(server, buffer)
            buffer = []
        busy = np.zeros(inputs.clients, dtype=bool)
        busy[[c for _, c, _ in running]] = True
        busy[client] = True
        idle = [*np.flatnonzero(~busy).tolist(), client]
        launch(server.select(idle, inputs.in_flight - len(running)))


def simulate_mode(mode: Mode, inputs: SimulationInput, data: fl.FederatedData, durations: np.ndarray) -> _Server:
    server = _Server(mode, inputs, data, durations)
    (_run_sync if mode == "sync" else _run_async)(server)
    return server


@tool("pisces_simulate", SimulationInput, "approximation")
def pisces_simulate(inputs: SimulationInput) -> SimulationOutput:
    """Event-driven asynchronous FL on digits comparing synchronous FedAvg, plain asynchronous FL
    (FedBuff: aggregate every min_updates arrivals, drop updates staler than the bound) and Pisces
    (utility-guided selection, aggregation paced at L_max / b, staleness-weighted updates) on
    time-to-accuracy. An approximation of the paper's setting: softmax regression instead of its models,
    client speeds from a seeded Pareto distribution, simulated seconds; see the module docstring for
    the deviations from the reference."""
    data = fl.digits_clients(inputs.clients, inputs.seed, skew=1.0)
    rng = np.random.default_rng(inputs.seed)
    speeds = rng.pareto(inputs.speed_tail, inputs.clients) + 0.05
    durations = np.array([len(y) for y in data.client_y]) / 50.0 / speeds
    servers = {mode: simulate_mode(mode, inputs, data, durations) for mode in MODES}
    return SimulationOutput(
        time_to_target={
            m: (round(s.time_to_target, 3) if s.time_to_target is not None else None) for m, s in servers.items()
        },
        final_accuracy={m: round(s.accuracy(), 4) for m, s in servers.items()},
        aggregations={m: s.aggregations for m, s in servers.items()},
        max_staleness={m: s.max_staleness for m, s in servers.items()},
        local_rounds={m: s.local_rounds for m, s in servers.items()},
        diverged={m: s.diverged for m, s in servers.items()},
    )
