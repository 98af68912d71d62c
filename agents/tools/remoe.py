"""Remoe: serving mixture-of-experts models on serverless functions.

Three pieces: predict which experts a new prompt activates from similar past prompts (soft cosine
similarity, top-k weighted), pre-allocate the main model's memory for the worst case under a latency
SLO, and place expert replicas with LPT (longest processing time first onto the least-loaded
function), reporting cost and makespan.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field, model_validator

from agents.tools.registry import tool
from agents.tools.validation import finite_array


def soft_cosine(a: np.ndarray, b: np.ndarray, similarity: np.ndarray) -> float:
    """Soft cosine similarity of a and b under a feature-similarity matrix (identity: plain cosine)."""
    numerator = a @ similarity @ b
    denominator = np.sqrt(a @ similarity @ a) * np.sqrt(b @ similarity @ b)
    return float(numerator / denominator) if denominator > 0 else 0.0


class PredictInput(BaseModel):
    prompt: list[float] = Field(description="embedding of the new prompt")
    history_prompts: list[list[float]] = Field(description="embeddings of past prompts")
    history_activations: list[list[float]] = Field(description="per past prompt, activation frequency per expert")
    top_k: int = Field(3, gt=0)
    feature_similarity: list[list[float]] | None = Field(None, description="defaults to the identity")

    @model_validator(mode="after")
    def _check(self) -> PredictInput:
        prompts = finite_array(self.history_prompts, "history_prompts", ndim=2)
        activations = finite_array(self.history_activations, "history_activations", ndim=2)
        if finite_array(self.prompt, "prompt", ndim=1).shape[0] != prompts.shape[1]:
            raise ValueError("prompt and history_prompts differ in embedding size")
        if activations.shape[0] != prompts.shape[0]:
            raise ValueError("history_activations needs one row per history prompt")
        return self


class PredictOutput(BaseModel):
    expert_probabilities: list[float]
    neighbours: list[int]


@tool("remoe_predict_experts", PredictInput, "faithful")
def remoe_predict_experts(inputs: PredictInput) -> PredictOutput:
    """Expert-activation prediction for a new prompt (faithful to Remoe's similar-prompt search: soft
    cosine similarity to past prompts, the top-k neighbours' activations weighted by similarity)."""
    prompts, activations = np.asarray(inputs.history_prompts), np.asarray(inputs.history_activations)
    similarity = np.asarray(inputs.feature_similarity) if inputs.feature_similarity else np.eye(prompts.shape[1])
    scores = np.array([soft_cosine(np.asarray(inputs.prompt), p, similarity) for p in prompts])
    neighbours = np.argsort(-scores, kind="stable")[: inputs.top_k]
    weights = np.clip(scores[neighbours], 0, None)
    weights = weights / weights.sum() if weights.sum() > 0 else np.full(len(neighbours), 1 / len(neighbours))
    return PredictOutput(expert_probabilities=(weights @ activations[neighbours]).round(6).tolist(),
                         neighbours=neighbours.tolist())  # fmt: skip


class MemoryInput(BaseModel):
    model_gb: float = Field(gt=0)
    kv_gb_per_token: float = Field(gt=0)
    max_prompt_tokens: int = Field(gt=0)
    max_output_tokens: int = Field(gt=0)
    seconds_per_token_at_gb: list[list[float]] = Field(description="[memory GB, decode seconds per token] points")
    slo_seconds: float = Field(gt=0)

    @model_validator(mode="after")
    def _check(self) -> MemoryInput:
        points = finite_array(self.seconds_per_token_at_gb, "seconds_per_token_at_gb", ndim=2)
        if points.shape[1] != 2 or np.any(np.diff(points[:, 0]) <= 0):
            raise ValueError("seconds_per_token_at_gb needs [GB, seconds] pairs with increasing GB")
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
    loads, assignment = np.zeros(machines), [[] for _ in range(machines)]
    for job in np.argsort(-durations, kind="stable"):
        target = int(np.argmin(loads))
        assignment[target].append(int(job))
        loads[target] += durations[job]
    return assignment, float(loads.max())


class PlacementInput(BaseModel):
    expert_seconds: list[float] = Field(min_length=1, description="expected compute time of each expert replica")
    functions: int = Field(gt=0)
    cost_per_function_second: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> PlacementInput:
        if np.any(finite_array(self.expert_seconds, "expert_seconds", ndim=1) < 0):
            raise ValueError("expert_seconds must be >= 0")
        return self


class PlacementOutput(BaseModel):
    assignment: list[list[int]]
    makespan_seconds: float
    cost: float


@tool("remoe_place_experts", PlacementInput, "faithful")
def remoe_place_experts(inputs: PlacementInput) -> PlacementOutput:
    """LPT placement of expert replicas on serverless functions (faithful: longest first onto the
    least-loaded function, a 4/3-approximation of the optimal makespan); cost = functions x makespan x
    price, as every function is billed until the batch completes."""
    assignment, makespan = lpt_schedule(np.asarray(inputs.expert_seconds), inputs.functions)
    return PlacementOutput(assignment=assignment, makespan_seconds=makespan,
                           cost=inputs.functions * makespan * inputs.cost_per_function_second)  # fmt: skip
