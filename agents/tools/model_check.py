"""Client-side malicious-model detection ("Hear No Evil"): before training on a global model the
server sent, compare it with the last model the client trusted and look for manipulation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, model_validator

from agents.tools.registry import tool
from agents.tools.validation import finite_array

StateDict = dict[str, np.ndarray]


def load_state(inline: dict[str, list] | None, path: str | None, name: str) -> StateDict:
    if (inline is None) == (path is None):
        raise ValueError(f"give exactly one of `{name}` or `{name}_path`")
    if path is not None:
        if not Path(path).is_file():
            raise ValueError(f"no .npz file at {path}")
        with np.load(path) as archive:
            return {k: finite_array(archive[k], f"{name}[{k}]") for k in archive.files}
    if not inline:
        raise ValueError(f"{name} holds no layers")
    return {k: finite_array(v, f"{name}[{k}]") for k, v in inline.items()}


class CheckInput(BaseModel):
    trusted: dict[str, list] | None = None
    received: dict[str, list] | None = None
    trusted_path: str | None = None
    received_path: str | None = None
    max_relative_change: float = Field(0.5, gt=0, description="per-layer ||new - old|| / ||old|| above this is flagged")
    magnitude_factor: float = Field(10.0, gt=1, description="max |w| growing by more than this factor is flagged")
    probe: list[list[float]] | None = Field(None, description="local inputs for a forward probe of an MLP")

    @model_validator(mode="after")
    def _check(self) -> CheckInput:
        load_state(self.trusted, self.trusted_path, "trusted")
        load_state(self.received, self.received_path, "received")
        if self.probe is not None:
            finite_array(self.probe, "probe", ndim=2)
        return self


class CheckOutput(BaseModel):
    suspicious: bool
    findings: list[str]
    relative_change: dict[str, float]


def _mlp_predictions(state: StateDict, batch: np.ndarray) -> np.ndarray:
    """Forward pass of weights/biases in key order as a ReLU MLP (weights: out x in)."""
    weights = [v for k, v in state.items() if v.ndim == 2]
    biases = [v for k, v in state.items() if v.ndim == 1]
    hidden = batch
    for i, (w, b) in enumerate(zip(weights, biases, strict=False)):
        hidden = hidden @ w.T + b
        if i < len(weights) - 1:
            hidden = np.maximum(hidden, 0)
    return hidden.argmax(axis=1)


def check_model(trusted: StateDict, received: StateDict, inputs: CheckInput) -> CheckOutput:
    findings: list[str] = []
    if set(trusted) != set(received):
        findings.append(f"layers differ: missing {sorted(set(trusted) - set(received))}, "
                        f"unexpected {sorted(set(received) - set(trusted))}")  # fmt: skip
    changes: dict[str, float] = {}
    for name in sorted(set(trusted) & set(received)):
        old, new = trusted[name], received[name]
        if old.shape != new.shape:
            findings.append(f"{name}: shape changed from {old.shape} to {new.shape}")
            continue
        change = float(np.linalg.norm(new - old) / max(np.linalg.norm(old), 1e-12))
        changes[name] = round(change, 6)
        if change > inputs.max_relative_change:
            findings.append(f"{name}: relative change {change:.2f} exceeds {inputs.max_relative_change}")
        if new.ndim == 2:
            zero_rows_old, zero_rows_new = int((~old.any(axis=1)).sum()), int((~new.any(axis=1)).sum())
            if zero_rows_new > zero_rows_old:
                findings.append(f"{name}: {zero_rows_new - zero_rows_old} new rows of exact zeros")
        if new.ndim == 1 and new.size > 1 and np.all(new == new[0]) and not np.all(old == old[0]):
            findings.append(f"{name}: every bias set to the same value {new[0]:.4g}")
        if np.abs(new).max() > inputs.magnitude_factor * max(np.abs(old).max(), 1e-12):
            findings.append(f"{name}: extreme magnitude {np.abs(new).max():.4g} (was {np.abs(old).max():.4g})")
    if inputs.probe is not None and not findings:
        batch = np.asarray(inputs.probe)
        before, after = _mlp_predictions(trusted, batch), _mlp_predictions(received, batch)
        if len(set(after.tolist())) == 1 and len(set(before.tolist())) > 1:
            findings.append(f"forward probe: every local input now maps to class {after[0]}")
    return CheckOutput(suspicious=bool(findings), findings=findings, relative_change=changes)


@tool("check_received_model", CheckInput, "approximation")
def check_received_model(inputs: CheckInput) -> CheckOutput:
    """Client-side detection of a manipulated global model before local training (an approximation of
    "Hear No Evil": strict key/shape checks, per-layer relative change, structural signatures - new
    rows of exact zeros, constant biases, extreme magnitudes - and an optional forward probe; the
    thresholds are ours). Findings name the layer."""
    trusted = load_state(inputs.trusted, inputs.trusted_path, "trusted")
    received = load_state(inputs.received, inputs.received_path, "received")
    return check_model(trusted, received, inputs)
