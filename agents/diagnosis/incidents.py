"""Incident records: one JSON object per line, the same schema for the shipped corpus, a user's history
and evaluation sets. A malformed line is reported with its file and line number; the other lines still load.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from thoughtgraph.agents.tools.arrays import attachments_root, read_attachment
from thoughtgraph.agents.tools.validation import InputError

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
    "hardware_fault",
    "bad_input_data",
    "launch_config",
)
"""The fixed root-cause categories; evaluation scores against these names. The last three came from real
reports (``corpus/real``): a GPU or link that fails (Xid, ECC, fallen off the bus, thermal throttling), data
whose labels or files are broken, and a job launched wrongly (devices, ports, container networking)."""

WorkloadKind = Literal["training", "fine-tuning", "inference", "federated"]
WORKLOAD_KINDS: tuple[str, ...] = ("training", "fine-tuning", "inference", "federated")
WORKLOAD_KEYS: dict[str, str] = {
    "kind": "training, fine-tuning, inference or federated",
    "framework": "the training or serving stack (Megatron-LM, DeepSpeed, vLLM, Flower, ...)",
    "model": "the model's name",
    "gpus": "how many GPUs the job uses",
    "nodes": "how many machines",
    "clients": "federated clients per round",
    "precision": "fp32, bf16, fp16, fp8, int8, ...",
    "serving": "how the model is served (engine, batching, expert placement)",
}
"""The facts a workload may state; any other key is refused (a label placed there would reach the agents)."""
MAX_ARTIFACT_CHARS = 2_000_000
"""An artifact is what a user pastes or attaches: logs, metric CSVs, small JSON. Larger ones are refused."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Action(_Strict):
    step: int = Field(ge=1)
    tool: str = Field(min_length=1, max_length=100)
    arguments: dict[str, Any] = Field(default_factory=dict)
    observation: str = ""


class RootCause(_Strict):
    category: str
    component: str | None = Field(default=None, min_length=1, max_length=200)
    """Optional; matched after normalisation (``same_component``)."""
    reason: str = ""

    @field_validator("category")
    @classmethod
    def _known_category(cls, value: str) -> str:
        if value not in CATEGORIES:
            raise ValueError(f"unknown root-cause category {value!r}; categories: {', '.join(CATEGORIES)}")
        return value


class Incident(_Strict):
    id: str = Field(min_length=1, max_length=200)
    report: str = Field(max_length=100_000)
    workload: dict[str, Any] = Field(default_factory=dict)
    artifacts: dict[str, str] = Field(default_factory=dict)
    actions: list[Action] = Field(default_factory=list)
    root_cause: RootCause | None = None
    secondary_categories: list[str] = Field(default_factory=list)
    """Causes the thread also names (a contributing factor); scored as neither right nor wrong."""
    mitigation: str = ""
    source: str = ""
    """Where the incident comes from (a public thread's URL for the real set)."""
    notes: str = ""
    """How the label was established; never shown to a diagnosis system."""

    @field_validator("secondary_categories")
    @classmethod
    def _known_secondary(cls, value: list[str]) -> list[str]:
        for category in value:
            if category not in CATEGORIES:
                raise ValueError(f"unknown root-cause category {category!r}; categories: {', '.join(CATEGORIES)}")
        return value

    @field_validator("workload")
    @classmethod
    def _workload_kind(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(WORKLOAD_KEYS))
        if unknown:
            raise ValueError(f"unknown workload key {unknown[0]!r}; workload keys: {', '.join(WORKLOAD_KEYS)}")
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


def parse_incident_line(
    text: str, *, file: str = "<text>", line: int = 1, folder: str | Path | None = None
) -> Incident | LoadProblem:
    """One incident from a JSONL line. An artifact may be inline text or ``{"path": "logs/train.log"}``, a file
    read from ``folder`` (the incident file's folder when loaded with ``load_incidents``): a relative path that
    may not leave it (no absolute path, ``..`` or link out), at most ``MAX_ARTIFACT_CHARS``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        return LoadProblem(file, line, f"not valid JSON: {error.msg} at column {error.colno}")
    if not isinstance(data, dict):
        return LoadProblem(file, line, f"an incident is a JSON object, got {type(data).__name__}")
    try:
        data = _with_file_artifacts(data, folder)
    except InputError as error:
        return LoadProblem(file, line, str(error))
    try:
        return Incident.model_validate(data)
    except ValidationError as error:
        return LoadProblem(file, line, describe_errors(error))


def _with_file_artifacts(data: dict[str, Any], folder: str | Path | None) -> dict[str, Any]:
    artifacts = data.get("artifacts")
    if not isinstance(artifacts, dict) or not any(isinstance(v, dict) for v in artifacts.values()):
        return data
    read: dict[str, Any] = {}
    for name, value in artifacts.items():
        if not isinstance(value, dict):
            read[name] = value
            continue
        if set(value) != {"path"} or not isinstance(value["path"], str):
            raise InputError(f'artifact {name!r}: a file artifact is {{"path": "relative/path"}}, got {value!r}')
        if folder is None:
            raise InputError(f"artifact {name!r}: file artifacts are read beside an incident file, not from text")
        with attachments_root(folder):
            raw = read_attachment(value["path"], f"artifact {name!r}", limit=MAX_ARTIFACT_CHARS)
        read[name] = raw.decode("utf-8", errors="replace")
    return {**data, "artifacts": read}


def describe_errors(error: ValidationError) -> str:
    """Pydantic's errors as one line, an unknown field named as such."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"]) or "record"
        if item["type"] == "extra_forbidden":
            parts.append(f"unknown field {where!r}")
        else:
            parts.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


_SYNONYMS = {
    "dataloader": "data loader",
    "data loader workers": "data loader num workers",
    "lr": "learning rate",
    "bs": "batch size",
    "vram": "gpu memory",
    "hbm": "gpu memory",
    "allreduce": "all reduce",
    "nccl allreduce": "nccl all reduce",
    "ckpt": "checkpoint",
}
_WORD = re.compile(r"[a-z0-9]+")


def normalise_component(text: str) -> str:
    """Lower case, punctuation and underscores as spaces, known synonyms mapped (``DataLoader num_workers`` and
    ``data loader num workers`` are one component)."""
    words = " ".join(_WORD.findall(text.lower().replace("_", " ")))
    for short, long in sorted(_SYNONYMS.items(), key=lambda item: -len(item[0])):
        words = re.sub(rf"\b{short}\b", long, words)
    return words


def same_component(predicted: str | None, gold: str | None) -> bool | None:
    """Whether a predicted component names the gold one after normalisation; None when there is no gold."""
    if not gold:
        return None
    return bool(predicted) and normalise_component(predicted or "") == normalise_component(gold)


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
            parsed = parse_incident_line(text, file=str(path), line=number, folder=path.parent)
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
REAL = CORPUS_FOLDER / "real" / "incidents.jsonl"
"""Real failure reports from public issue threads, labelled by the cause each thread settled on (evaluation
only: never mined)."""
