"""Incident records: one JSON object per line, the same schema for the shipped corpus, a user's history
and evaluation sets. A malformed line is reported with its file and line number; the other lines still load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

CATEGORIES: tuple[str, ...] = (
    "gpu_oom",
    "collective_timeout",
    "straggler",
    "dataloader_stall",
    "loss_divergence",
    "low_precision_outliers",
    "moe_serving_cost",
    "fl_client_drift",
    "poisoned_update",
    "gradient_leakage",
    "checkpoint_corruption",
    "version_mismatch",
    "disk_full",
    "network_partition",
)
"""The fixed root-cause categories; evaluation scores against these names."""

WorkloadKind = Literal["training", "fine-tuning", "inference", "federated"]
WORKLOAD_KINDS: tuple[str, ...] = ("training", "fine-tuning", "inference", "federated")
MAX_ARTIFACT_CHARS = 2_000_000
"""An artifact is what a user pastes or attaches: logs, metric CSVs, small JSON. Larger ones are refused."""


class Action(BaseModel):
    step: int = Field(ge=1)
    tool: str = Field(min_length=1, max_length=100)
    arguments: dict[str, Any] = Field(default_factory=dict)
    observation: str = ""


class RootCause(BaseModel):
    category: str
    component: str = Field(min_length=1, max_length=200)
    reason: str = ""

    @field_validator("category")
    @classmethod
    def _known_category(cls, value: str) -> str:
        if value not in CATEGORIES:
            raise ValueError(f"unknown root-cause category {value!r}; categories: {', '.join(CATEGORIES)}")
        return value


class Incident(BaseModel):
    id: str = Field(min_length=1, max_length=200)
    report: str = Field(max_length=100_000)
    workload: dict[str, Any] = Field(default_factory=dict)
    artifacts: dict[str, str] = Field(default_factory=dict)
    actions: list[Action] = Field(default_factory=list)
    root_cause: RootCause | None = None
    mitigation: str = ""

    @field_validator("workload")
    @classmethod
    def _workload_kind(cls, value: dict[str, Any]) -> dict[str, Any]:
        kind = value.get("kind")
        if kind is not None and kind not in WORKLOAD_KINDS:
            raise ValueError(f"workload.kind must be one of {', '.join(WORKLOAD_KINDS)}, got {kind!r}")
        return value

    @field_validator("artifacts")
    @classmethod
    def _artifact_sizes(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if len(text) > MAX_ARTIFACT_CHARS:
                raise ValueError(f"artifact {name!r} has {len(text)} characters; at most {MAX_ARTIFACT_CHARS}")
        return value

    def public(self) -> Incident:
        """What a diagnosis system is given: the report, the workload facts and the artifacts, nothing else."""
        return Incident(id=self.id, report=self.report, workload=self.workload, artifacts=self.artifacts)


@dataclass(frozen=True)
class LoadProblem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def parse_incident_line(text: str, *, file: str = "<text>", line: int = 1) -> Incident | LoadProblem:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        return LoadProblem(file, line, f"not valid JSON: {error.msg} at column {error.colno}")
    if not isinstance(data, dict):
        return LoadProblem(file, line, f"an incident is a JSON object, got {type(data).__name__}")
    try:
        return Incident.model_validate(data)
    except ValidationError as error:
        where = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or 'record'}: {item['msg'].removeprefix('Value error, ')}"
            for item in error.errors(include_url=False)
        )
        return LoadProblem(file, line, where)


def load_incidents(*paths: str | Path) -> tuple[list[Incident], list[LoadProblem]]:
    """Every well-formed incident of the JSONL files (directories: their ``*.jsonl``), and the problems found.
    Ids must be unique across the files; a repeated id is a problem and its later record is skipped."""
    incidents: list[Incident] = []
    problems: list[LoadProblem] = []
    seen: set[str] = set()
    for path in _expand(paths):
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not text.strip():
                continue
            parsed = parse_incident_line(text, file=str(path), line=number)
            if isinstance(parsed, LoadProblem):
                problems.append(parsed)
            elif parsed.id in seen:
                problems.append(LoadProblem(str(path), number, f"incident id {parsed.id!r} appears twice"))
            else:
                seen.add(parsed.id)
                incidents.append(parsed)
    return incidents, problems


def _expand(paths: tuple[str | Path, ...]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(path.glob("*.jsonl")))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no incident file or folder at {path}")
    return files


CORPUS_FOLDER = Path(__file__).parent / "corpus"
HISTORY = CORPUS_FOLDER / "history.jsonl"
"""The shipped history: what the default knowledge base is mined from."""
HELDOUT = CORPUS_FOLDER / "heldout.jsonl"
"""The shipped held-out split: never mined when evaluating (a fixed split, see the corpus README)."""
