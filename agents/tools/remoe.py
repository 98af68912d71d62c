"""Remoe: serving mixture-of-experts models on serverless functions.

Four pieces: predict which experts a new prompt activates from similar past prompts (soft cosine
similarity, top-k weighted), pre-allocate the main model's memory for the worst case under a latency
SLO, place expert replicas with LPT (longest processing time first onto the least-loaded function),
and choose the function memory size and the replica count of each expert jointly (a Lagrangian
relaxation of the SLO constraint: the multiplier is found by bisection for each memory size, LPT places the
replicas at every step, and a greedy repair adds replicas where the dual search skips an integer plan).

Billing is pay-per-use: a function is billed for its memory times its own busy seconds; a function
that runs nothing costs nothing (idle functions are not billed).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field, model_validator

from thoughtgraph.agents.tools.arrays import Matrix, Vector, as_array, check_array_argument
from thoughtgraph.agents.tools.registry import tool
from thoughtgraph.agents.tools.validation import MAX_ELEMENTS, MAX_MAGNITUDE, InputError, finite_array

MAX_SECONDS = 1e9


def _unit(rows: np.ndarray) -> np.ndarray:
    """Rows scaled by their largest magnitude: soft cosine is scale-free, and this keeps a·S·a finite."""
    scale = np.abs(rows).max(axis=-1, keepdims=True)
    return rows / np.where(scale > 0, scale, 1.0)


def soft_cosine(a: np.ndarray, b: np.ndarray, similarity: np.ndarray) -> float:
    """Soft cosine similarity of a and b under a feature-similarity matrix (identity: plain cosine)."""
    a, b = _unit(a), _unit(b)
    numerator = a @ similarity @ b
    denominator = np.sqrt(max(a @ similarity @ a, 0.0)) * np.sqrt(max(b @ similarity @ b, 0.0))
    return float(numerator / denominator) if denominator > 0 else 0.0


MAX_SIMILARITY_SIZE = 2048


class PredictInput(BaseModel):
    prompt: Vector = Field(description="embedding of the new prompt")
    history_prompts: Matrix = Field(description="embeddings of past prompts, one row each")
    history_activations: Matrix = Field(description="per past prompt, activation frequency (>= 0) per expert")
    top_k: int = Field(3, gt=0, le=1000)
    feature_similarity: Matrix | None = Field(
        None, description="symmetric positive semi-definite, one row per embedding dimension; defaults to the identity"
    )

    @model_validator(mode="after")
    def _check(self) -> PredictInput:
        check_array_argument(self.prompt, "prompt", 1, MAX_MAGNITUDE)
        check_array_argument(self.history_prompts, "history_prompts", 2, MAX_MAGNITUDE)
        check_array_argument(self.history_activations, "history_activations", 2, MAX_MAGNITUDE)
        if self.feature_similarity is not None:
            check_array_argument(self.feature_similarity, "feature_similarity", 2, 1e6)
        return self

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(prompt, history prompts, activations, similarity), loaded and checked against each other."""
        prompt = as_array(self.prompt, "prompt", 1, MAX_MAGNITUDE)
        prompts = as_array(self.history_prompts, "history_prompts", 2, MAX_MAGNITUDE)
        activations = as_array(self.history_activations, "history_activations", 2, MAX_MAGNITUDE)
        if prompt.shape[0] != prompts.shape[1]:
            raise InputError(f"prompt has {prompt.shape[0]} dimensions, history_prompts {prompts.shape[1]}")
        if activations.shape[0] != prompts.shape[0]:
            raise InputError("history_activations needs one row per history prompt")
        if np.any(activations < 0):
            raise InputError("history_activations are frequencies and must be >= 0")
        size = prompts.shape[1]
        if self.feature_similarity is None:
            return prompt, prompts, activations, np.eye(size)
        if size > MAX_SIMILARITY_SIZE:
            raise InputError(f"feature_similarity is limited to {MAX_SIMILARITY_SIZE} embedding dimensions")
        similarity = as_array(self.feature_similarity, "feature_similarity", 2, 1e6)
        if similarity.shape != (size, size):
            raise InputError(f"feature_similarity must be {size} x {size}, got {similarity.shape}")
        if not np.allclose(similarity, similarity.T):
            raise InputError("feature_similarity must be symmetric")
        if np.linalg.eigvalsh(similarity).min() < -1e-9 * max(1.0, np.abs(similarity).max()):
            raise InputError("feature_similarity must be positive semi-definite (soft cosine needs a·S·a >= 0)")
        return prompt, prompts, activations, similarity


class PredictOutput(BaseModel):
    expert_probabilities: list[float]
    neighbours: list[int]


@tool("remoe_predict_experts", PredictInput, "approximation", effects="reads_files")
def remoe_predict_experts(inputs: PredictInput) -> PredictOutput:
    """Expert-activation prediction for a new prompt (an approximation of Remoe's similar-prompt search:
    soft cosine similarity to past prompts under a given feature-similarity matrix, the top-k
    neighbours' activations weighted by similarity; prompts are embedding vectors here, where the paper
    aligns token embedding matrices of each pair of prompts)."""
    prompt, prompts, activations, similarity = inputs.arrays()
    prompt, prompts = _unit(prompt), _unit(prompts)
    norms = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", prompts, similarity, prompts), 0))
    prompt_norm = np.sqrt(max(prompt @ similarity @ prompt, 0.0))
    denominator = norms * prompt_norm
    scores = np.divide(prompts @ similarity @ prompt, denominator, out=np.zeros(len(prompts)), where=denominator > 0)
    neighbours = np.argsort(-scores, kind="stable")[: inputs.top_k]
    weights = np.clip(scores[neighbours], 0, None)
    weights = weights / weights.sum() if weights.sum() > 0 else np.full(len(neighbours), 1 / len(neighbours))
    return PredictOutput(expert_probabilities=(weights @ activations[neighbours]).round(6).tolist(),
                         neighbours=neighbours.tolist())  # fmt: skip


class MemoryInput(BaseModel):
    model_gb: float = Field(gt=0, le=1e6)
    kv_gb_per_token: float = Field(gt=0, le=1e3)
    max_prompt_tokens: int = Field(gt=0, le=10_000_000)
    max_output_tokens: int = Field(gt=0, le=10_000_000)
    seconds_per_token_at_gb: list[list[float]] = Field(
        description="[memory GB, decode seconds per token] points", max_length=10_000
    )
    slo_seconds: float = Field(gt=0, le=MAX_SECONDS)

    @model_validator(mode="after")
    def _check(self) -> MemoryInput:
        points = finite_array(self.seconds_per_token_at_gb, "seconds_per_token_at_gb", ndim=2, max_abs=1e9)
        if points.shape[1] != 2 or np.any(np.diff(points[:, 0]) <= 0) or np.any(points <= 0):
            raise ValueError("seconds_per_token_at_gb needs positive [GB, seconds] pairs with increasing GB")
        return self


class MemoryOutput(BaseModel):
    memory_gb: float | None
    worst_case_latency_seconds: float | None
    feasible: bool


@tool("remoe_preallocate_memory", MemoryInput, "approximation")
def remoe_preallocate_memory(inputs: MemoryInput) -> MemoryOutput:
    """Worst-case memory pre-allocation for the main model under an SLO (an approximation: the worst
    case is the longest prompt plus the longest output; the smallest profiled memory size whose decode
    speed meets the SLO for that case, and that holds the weights and the KV cache, is chosen)."""
    points = np.asarray(inputs.seconds_per_token_at_gb)
    need = inputs.model_gb + inputs.kv_gb_per_token * (inputs.max_prompt_tokens + inputs.max_output_tokens)
    for memory, per_token in points:
        latency = per_token * inputs.max_output_tokens
        if memory >= need and latency <= inputs.slo_seconds:
            return MemoryOutput(memory_gb=float(memory), worst_case_latency_seconds=float(latency), feasible=True)
    return MemoryOutput(memory_gb=None, worst_case_latency_seconds=None, feasible=False)


def lpt_schedule(durations: np.ndarray, machines: int) -> tuple[list[list[int]], float]:
    """Longest processing time first onto the least-loaded machine: (jobs per machine, makespan)."""
    loads, assignment = np.zeros(machines), [[] for _ in range(machines)]
    for job in np.argsort(-durations, kind="stable"):
        target = int(np.argmin(loads))
        assignment[target].append(int(job))
        loads[target] += durations[job]
    return assignment, float(loads.max())


class PlacementInput(BaseModel):
    expert_seconds: list[float] = Field(
        min_length=1, max_length=MAX_ELEMENTS // 1024, description="expected compute time of each expert replica"
    )
    functions: int = Field(gt=0, le=1_000_000)
    memory_gb: float = Field(1.0, gt=0, le=1e4, description="memory of each function")
    price_per_gb_second: float = Field(1.0, gt=0, le=1e6)

    @model_validator(mode="after")
    def _check(self) -> PlacementInput:
        if np.any(finite_array(self.expert_seconds, "expert_seconds", ndim=1, max_abs=MAX_SECONDS) < 0):
            raise ValueError("expert_seconds must be >= 0")
        return self


class PlacementOutput(BaseModel):
    assignment: list[list[int]]
    """Per used function, the experts it runs (functions left idle are not listed)."""
    makespan_seconds: float
    cost: float
    """Memory x busy seconds x price, summed over the functions that run something."""
    busy_function_seconds: float


@tool("remoe_place_experts", PlacementInput, "faithful")
def remoe_place_experts(inputs: PlacementInput) -> PlacementOutput:
    """LPT placement of expert replicas on serverless functions (faithful for the placement: longest
    first onto the least-loaded function, a 4/3-approximation of the optimal makespan). The cost is our
    model, not the paper's (which is not public): pay-per-use, each function billed for its memory times
    its own busy seconds, so idle functions cost nothing."""
    seconds = np.asarray(inputs.expert_seconds)
    assignment, makespan = lpt_schedule(seconds, min(inputs.functions, len(seconds)))
    busy = float(seconds.sum())
    return PlacementOutput(
        assignment=[jobs for jobs in assignment if jobs], makespan_seconds=makespan,
        cost=busy * inputs.memory_gb * inputs.price_per_gb_second, busy_function_seconds=busy,
    )  # fmt: skip


class PlanInput(BaseModel):
    expert_seconds: list[float] = Field(
        min_length=1, max_length=4096, description="compute seconds of each expert's expected work at reference_gb"
    )
    expert_memory_gb: list[float] = Field(min_length=1, max_length=4096, description="weights of each expert")
    memory_options_gb: list[float] = Field(min_length=1, max_length=64, description="function sizes on offer")
    reference_gb: float = Field(2.0, gt=0, le=1e4, description="memory at which expert_seconds were measured")
    full_speed_gb: float = Field(8.0, gt=0, le=1e4, description="CPU share grows with memory up to this size")
    max_functions: int = Field(16, gt=0, le=4096)
    max_replicas: int = Field(4, gt=0, le=16)
    replica_overhead_seconds: float = Field(0.5, ge=0, le=1e6, description="load/start time each replica adds")
    slo_seconds: float = Field(gt=0, le=MAX_SECONDS)
    price_per_gb_second: float = Field(1.0, gt=0, le=1e6)
    iterations: int = Field(40, gt=0, le=200, description="bisection steps on the multiplier")

    @model_validator(mode="after")
    def _check(self) -> PlanInput:
        seconds = finite_array(self.expert_seconds, "expert_seconds", ndim=1, max_abs=MAX_SECONDS)
        memory = finite_array(self.expert_memory_gb, "expert_memory_gb", ndim=1, max_abs=1e4)
        if seconds.shape != memory.shape:
            raise ValueError("expert_seconds and expert_memory_gb need one entry per expert")
        if np.any(seconds < 0) or np.any(memory <= 0):
            raise ValueError("expert_seconds must be >= 0 and expert_memory_gb > 0")
        if np.any(finite_array(self.memory_options_gb, "memory_options_gb", ndim=1, max_abs=1e4) <= 0):
            raise ValueError("memory_options_gb must be > 0")
        return self


class PlanOutput(BaseModel):
    feasible: bool
    """False when no choice meets the SLO; the plan then is the fastest one found."""
    memory_gb: float
    replicas: list[int]
    assignment: list[list[list[int]]]
    """Per used function, its [expert, replica] jobs."""
    makespan_seconds: float
    cost: float
    multiplier: float | None
    """The Lagrange multiplier of the SLO constraint (cost per second of makespan) at the chosen plan;
    None when no plan met the SLO or the greedy repair found the chosen plan."""


def _plan(inputs: PlanInput, memory: float, multiplier: float) -> tuple[np.ndarray, list, float, float] | None:
    """For one function size and multiplier: replicas per expert minimising cost + multiplier x its
    replica time, then LPT over the replica jobs. None when an expert does not fit the function."""
    weights = np.asarray(inputs.expert_memory_gb)
    if np.any(weights > memory):
        return None
    speed = min(memory, inputs.full_speed_gb) / inputs.reference_gb
    work = np.asarray(inputs.expert_seconds) / speed
    options = np.arange(1, inputs.max_replicas + 1)
    per_replica = work[:, None] / options[None, :] + inputs.replica_overhead_seconds
    if np.isinf(multiplier):  # the fastest plan: as many replicas as allowed
        replicas = np.full(len(work), inputs.max_replicas)
    else:
        lagrangian = memory * inputs.price_per_gb_second * per_replica * options[None, :] + multiplier * per_replica
        replicas = options[np.argmin(lagrangian, axis=1)]
    return _placed(inputs, memory, work, replicas)


def _placed(inputs: PlanInput, memory: float, work: np.ndarray, replicas: np.ndarray) -> tuple:
    jobs = [(e, r) for e in range(len(work)) for r in range(replicas[e])]
    durations = np.array([work[e] / replicas[e] + inputs.replica_overhead_seconds for e, _ in jobs])
    assignment, makespan = lpt_schedule(durations, min(inputs.max_functions, len(jobs)))
    cost = float(durations.sum() * memory * inputs.price_per_gb_second)
    return replicas, [[list(jobs[j]) for j in machine] for machine in assignment if machine], makespan, cost


def _repaired(inputs: PlanInput, memory: float) -> tuple | None:
    """Primal repair from the cheapest plan: while the SLO is missed, add one replica to the expert whose
    extra replica cuts the makespan most per unit of added cost (a greedy complement to the dual
    search, which can skip integer plans between two multipliers)."""
    if np.any(np.asarray(inputs.expert_memory_gb) > memory):
        return None
    work = np.asarray(inputs.expert_seconds) / (min(memory, inputs.full_speed_gb) / inputs.reference_gb)
    replicas = np.ones(len(work), dtype=int)
    plan = _placed(inputs, memory, work, replicas)
    while plan[2] > inputs.slo_seconds:
        options = []
        for expert in np.flatnonzero(replicas < inputs.max_replicas):
            trial = replicas.copy()
            trial[expert] += 1
            candidate = _placed(inputs, memory, work, trial)
            gain = plan[2] - candidate[2]
            if gain > 0:
                options.append((gain / max(candidate[3] - plan[3], 1e-12), expert, candidate, trial))
        if not options:
            return None
        _, _, plan, replicas = max(options, key=lambda o: o[0])
    return (*plan, None)


def _cheapest_feasible(inputs: PlanInput, memory: float) -> tuple | None:
    """Bisection on the multiplier for one function size: the smallest multiplier whose Lagrangian
    minimiser meets the SLO (the dual of a single constraint is concave in the multiplier, and a
    larger multiplier buys makespan with cost). None when no multiplier reaches the SLO."""
    plan = _plan(inputs, memory, 0.0)
    if plan is None:
        return None
    if plan[2] <= inputs.slo_seconds:
        return (*plan, 0.0)
    low, high = 0.0, inputs.price_per_gb_second * memory
    for _ in range(80):  # doubling: at the top, every expert takes max_replicas
        plan = _plan(inputs, memory, high)
        if plan is not None and plan[2] <= inputs.slo_seconds:
            break
        low, high = high, high * 2
    else:
        return None
    best = (*plan, high)
    for _ in range(inputs.iterations):
        middle = (low + high) / 2
        plan = _plan(inputs, memory, middle)
        if plan is not None and plan[2] <= inputs.slo_seconds:
            high, best = middle, (*plan, middle)
        else:
            low = middle
    return best


@tool("remoe_plan_experts", PlanInput, "approximation")
def remoe_plan_experts(inputs: PlanInput) -> PlanOutput:
    """Joint choice of the remote functions' memory size and each expert's replica count, minimising
    pay-per-use cost subject to makespan <= SLO (an approximation of Remoe's Lagrangian-duality + LPT
    optimisation, whose exact formulation is not public: the SLO is relaxed with a multiplier found by
    bisection per memory size; for each multiplier, replica counts minimise cost + multiplier x replica
    time per expert and LPT places the replicas; CPU speed grows with memory up to full_speed_gb; each
    replica adds replica_overhead_seconds), complemented by a greedy primal repair (add the replica that
    cuts the makespan most per added cost). Returns the cheapest plan that met the SLO, or the fastest
    plan with feasible=False. Not guaranteed optimal: the problem is integer."""
    plans = [(memory, plan) for memory in inputs.memory_options_gb
             for plan in (_cheapest_feasible(inputs, memory), _repaired(inputs, memory))]  # fmt: skip
    feasible = [(memory, plan) for memory, plan in plans if plan is not None]
    if feasible:
        memory, (replicas, assignment, makespan, cost, multiplier) = min(feasible, key=lambda p: p[1][3])
    else:
        fastest = [(m, _plan(inputs, m, np.inf)) for m in inputs.memory_options_gb]
        fastest = [(m, p) for m, p in fastest if p is not None]
        if not fastest:
            raise InputError("no memory option holds the largest expert's weights")
        memory, (replicas, assignment, makespan, cost) = min(fastest, key=lambda p: p[1][2])
        multiplier = np.inf
    return PlanOutput(
        feasible=bool(feasible), memory_gb=float(memory), replicas=[int(r) for r in replicas],
        assignment=assignment, makespan_seconds=float(makespan), cost=float(cost),
        multiplier=float(multiplier) if multiplier is not None and np.isfinite(multiplier) else None,
    )  # fmt: skip
