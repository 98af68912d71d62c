"""Client-side malicious-model detection ("Hear No Evil"): before training on a global model the
server sent, compare it with the last model the client trusted and look for manipulation.

Models are state dicts: inline JSON (name -> nested lists) or files (.npz, .safetensors, PyTorch
.pt/.pth/.bin state dicts, read with ``weights_only=True``), with any layer types - linear,
convolution, embedding, BatchNorm (with its running statistics and counter) and LayerNorm.

Scale: a tensor's relative change is ||new - old|| / max(||old||, sqrt(size) x the model's typical
weight magnitude), so a zero-initialised bias that moves 0 -> 0.01 in a benign first round is measured
against a layer of typical size, not against zero. Integer counters (``num_batches_tracked``) are
checked for presence and shape only.
"""

from __future__ import annotations

import re

import numpy as np
from pydantic import BaseModel, Field, model_validator

from thoughtgraph.agents.tools.arrays import check_path, load_tensors
from thoughtgraph.agents.tools.registry import tool
from thoughtgraph.agents.tools.validation import MAX_ELEMENTS, InputError, finite_array

StateDict = dict[str, np.ndarray]
COUNTER = re.compile(r"(^|\.)num_batches_tracked$")
MAX_PROBE_FLOPS = 2**33


def load_state(inline: dict[str, list] | None, path: str | None, name: str) -> StateDict:
    if path is not None:
        tensors = load_tensors(path, f"{name}_path")
    else:
        tensors = {k: np.asarray(v, dtype=float) for k, v in (inline or {}).items()}
    if not tensors:
        raise InputError(f"{name} holds no tensors")
    if sum(v.size for v in tensors.values()) > MAX_ELEMENTS:
        raise InputError(f"{name} has more than {MAX_ELEMENTS:,} parameters; the limit for one call")
    return {k: np.asarray(finite_array(np.atleast_1d(v), f"{name}[{k}]"), dtype=float).reshape(np.shape(v))
            for k, v in tensors.items()}  # fmt: skip


class CheckInput(BaseModel):
    trusted: dict[str, list] | None = Field(None, max_length=10_000)
    received: dict[str, list] | None = Field(None, max_length=10_000)
    trusted_path: str | None = Field(None, max_length=4096, description=".npz, .safetensors or .pt state dict")
    received_path: str | None = Field(None, max_length=4096, description=".npz, .safetensors or .pt state dict")
    max_relative_change: float = Field(
        0.5, gt=0, le=1e6, description="per-tensor relative change above this is flagged"
    )
    magnitude_factor: float = Field(10.0, gt=1, le=1e12, description="max |w| growing by more than this is flagged")
    probe: list[list[float]] | None = Field(
        None, max_length=10_000, description="local inputs for a forward probe (models of linear and norm layers)"
    )

    @model_validator(mode="after")
    def _check(self) -> CheckInput:
        for name in ("trusted", "received"):
            inline, path = getattr(self, name), getattr(self, f"{name}_path")
            if (inline is None) == (path is None):
                raise ValueError(f"give exactly one of `{name}` or `{name}_path`")
            if path is not None:
                check_path(path, f"{name}_path")
            elif not inline:
                raise ValueError(f"{name} holds no tensors")
        if self.probe is not None:
            finite_array(self.probe, "probe", ndim=2, max_abs=1e12)
        return self


class CheckOutput(BaseModel):
    suspicious: bool
    findings: list[str]
    relative_change: dict[str, float]
    probe: str
    """What the forward probe did: not requested, skipped (and why), or its outcome."""


def typical_scale(state: StateDict) -> float:
    """Root mean square of the model's float parameters (counters excluded); 1 for an all-zero model."""
    values = [v.ravel() for k, v in state.items() if not COUNTER.search(k)]
    flat = np.concatenate(values) if values else np.zeros(0)
    rms = _norm(flat) / np.sqrt(flat.size) if flat.size else 0.0
    return rms if rms > 0 and np.isfinite(rms) else 1.0


def _norm(values: np.ndarray) -> float:
    """The L2 norm, computed on values scaled to at most 1 so that squares cannot overflow."""
    scale = float(np.abs(values).max()) if values.size else 0.0
    return float(np.linalg.norm(values / scale)) * scale if scale > 0 else 0.0


def _module_order(key: str) -> list[tuple[int, int | str]]:
    """``"10.weight"`` after ``"2.weight"``: numeric parts of a dotted name compare as numbers."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in key.split(".")]


def sequential_layers(state: StateDict) -> list[tuple[str, str]] | str:
    """The model as a sequence of ("linear" | "batchnorm" | "layernorm", prefix), or why it is not one. Layers
    are taken in the order given, except that an ``nn.Sequential`` state dict (every name starts with a layer
    number) is taken by number (``0.``, ``1.``, ..., ``10.``): safetensors files store tensors sorted by name
    and size, not as ``nn.Sequential`` wrote them."""
    layers: list[tuple[str, str]] = []
    numbered = all(key.split(".", 1)[0].isdigit() for key in state)
    for key in sorted(state, key=_module_order) if numbered else state:
        value = state[key]
        if not key.endswith("weight"):
            continue
        prefix = key[: -len("weight")]
        if value.ndim == 2:
            layers.append(("linear", prefix))
        elif value.ndim == 1:
            layers.append(("batchnorm" if f"{prefix}running_mean" in state else "layernorm", prefix))
        else:
            return f"{key} has shape {value.shape}: the probe runs models of linear and norm layers only"
    if not any(kind == "linear" for kind, _ in layers):
        return "no linear layer to probe"
    return layers


def forward(state: StateDict, layers: list[tuple[str, str]], batch: np.ndarray) -> np.ndarray:
    """Logits of the state dict run as a sequential model of blocks ``Linear [-> norm] -> ReLU``: linear
    layers (weight out x in, optional bias), BatchNorm in eval mode (running statistics, eps 1e-5) and
    LayerNorm (eps 1e-5) where they appear, a ReLU before every linear layer but the first."""
    hidden = batch
    for index, (kind, prefix) in enumerate(layers):
        weight, bias = state[f"{prefix}weight"], state.get(f"{prefix}bias")
        if hidden.shape[1] != weight.shape[-1]:
            raise InputError(f"{prefix}weight expects {weight.shape[-1]} features, the probe gives {hidden.shape[1]}")
        if kind == "linear":
            if index > 0:
                hidden = np.maximum(hidden, 0)
            hidden = hidden @ weight.T + (bias if bias is not None else 0.0)
            continue
        if kind == "batchnorm":
            mean, variance = state[f"{prefix}running_mean"], state[f"{prefix}running_var"]
        else:
            mean, variance = hidden.mean(axis=1, keepdims=True), hidden.var(axis=1, keepdims=True)
        hidden = (hidden - mean) / np.sqrt(np.maximum(variance, 0) + 1e-5) * weight + (bias if bias is not None else 0)
    return hidden


def _probe(trusted: StateDict, received: StateDict, batch: np.ndarray | None) -> tuple[str, list[str]]:
    if batch is None:
        return "not requested", []
    layers = sequential_layers(received)
    if isinstance(layers, str):
        return f"skipped: {layers}", []
    widths = sum(trusted[f"{p}weight"].size for _, p in layers)
    if widths * batch.shape[0] > MAX_PROBE_FLOPS:
        return "skipped: the probe batch is too large for this model", []
    before, after = forward(trusted, layers, batch).argmax(axis=1), forward(received, layers, batch).argmax(axis=1)
    if not np.all(np.isfinite(forward(received, layers, batch))):
        return "ran: the received model produces non-finite outputs", ["forward probe: non-finite outputs"]
    changed = float((before != after).mean())
    summary = f"ran on {len(batch)} inputs: {changed:.0%} change their predicted class"
    if len(set(after.tolist())) == 1 and len(set(before.tolist())) > 1:
        return summary, [f"forward probe: every local input now maps to class {after[0]}"]
    return summary, []


def check_model(trusted: StateDict, received: StateDict, inputs: CheckInput) -> CheckOutput:
    findings: list[str] = []
    if set(trusted) != set(received):
        findings.append(f"layers differ: missing {sorted(set(trusted) - set(received))[:20]}, "
                        f"unexpected {sorted(set(received) - set(trusted))[:20]}")  # fmt: skip
    scale = typical_scale(trusted)
    changes: dict[str, float] = {}
    for name in sorted(set(trusted) & set(received)):
        old, new = trusted[name], received[name]
        if old.shape != new.shape:
            findings.append(f"{name}: shape changed from {old.shape} to {new.shape}")
            continue
        if COUNTER.search(name) or old.size == 0:
            continue
        change = _norm(new - old) / max(_norm(old), scale * np.sqrt(old.size))
        changes[name] = round(float(change), 6)  # numpy rounds by multiplying, which overflows near 1e308
        large_change = change > inputs.max_relative_change
        if large_change:
            findings.append(f"{name}: relative change {change:.3g} exceeds {inputs.max_relative_change}")
        if new.ndim >= 2:  # output units (rows; conv filters) that became exactly zero
            zero_old = int((~old.reshape(old.shape[0], -1).any(axis=1)).sum())
            zero_new = int((~new.reshape(new.shape[0], -1).any(axis=1)).sum())
            if zero_new > zero_old:
                findings.append(f"{name}: {zero_new - zero_old} new rows of exact zeros")
        constant = new.ndim == 1 and new.size > 1 and np.all(new == new[0])
        if constant and (not np.all(old == old[0]) or (large_change and new[0] != old[0])):
            findings.append(f"{name}: every bias set to the same value {new[0]:.4g}")
        old_max, new_max = float(np.abs(old).max()), float(np.abs(new).max())
        if new_max > inputs.magnitude_factor * max(old_max, scale):
            findings.append(f"{name}: extreme magnitude {new_max:.4g} (was {old_max:.4g})")
    probe = np.asarray(inputs.probe, dtype=float) if inputs.probe is not None else None
    if set(trusted) == set(received) and not any("shape changed" in f for f in findings):
        probe_status, probe_findings = _probe(trusted, received, probe)
        findings += probe_findings
    else:
        probe_status = (
            "skipped: the received model's layers differ from the trusted one"
            if probe is not None
            else ("not requested")
        )
    return CheckOutput(suspicious=bool(findings), findings=findings, relative_change=changes, probe=probe_status)


@tool("check_received_model", CheckInput, "approximation", effects="reads_files")
def check_received_model(inputs: CheckInput) -> CheckOutput:
    """Client-side detection of a manipulated global model before local training (an approximation of
    "Hear No Evil": strict key/shape checks, per-tensor relative change against a floor of the model's
    typical weight scale, structural signatures - new rows or filters of exact zeros, constant biases,
    extreme magnitudes - and an optional forward probe of linear/norm models; the thresholds are ours).
    Reads PyTorch state dicts, safetensors and .npz files. Findings name the layer."""
    trusted = load_state(inputs.trusted, inputs.trusted_path, "trusted")
    received = load_state(inputs.received, inputs.received_path, "received")
    return check_model(trusted, received, inputs)
