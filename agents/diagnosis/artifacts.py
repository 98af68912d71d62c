"""What an artifact is, by content: the inspectors bind to artifacts by kind, not by file name, since every
user names files differently. Parsing is strict and its errors name the artifact."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from typing import Any

from thoughtgraph.agents.diagnosis.signatures import is_log

KINDS = (
    "log",
    "step_times",
    "metrics",
    "network",
    "fl_round",
    "model_pair",
    "activation_stats",
    "expert_stats",
    "checkpoint_manifest",
    "disk_usage",
    "packages",
    "gpu_status",
)
"""``packages``: a version list in any form people paste (``pip freeze``, ``torch: 2.3.0``, ``torch 2.3.0``,
``collect_env`` output); ``gpu_status``: ``nvidia-smi`` output."""


COLUMN_ALIASES = {
    "rank": "worker", "node": "worker", "host": "worker",
    "iter_time": "step_time", "iteration_time": "step_time", "step_seconds": "step_time", "time_per_step": "step_time",
    "data_seconds": "data_time", "dataloader_time": "data_time", "data_wait": "data_time",
    "iteration": "step", "iter": "step", "global_step": "step",
    "packet_loss": "loss_pct", "loss_percent": "loss_pct", "source": "src", "destination": "dst",
}  # fmt: skip
"""Column names other tools print for the same quantity (torch profilers, DeepSpeed, ping scripts)."""


def column_name(raw: str) -> str:
    name = raw.strip().lower()
    return COLUMN_ALIASES.get(name, name)


class ArtifactError(ValueError):
    """An artifact is not what an inspector needs; the message names it and says why."""


def kind_of(name: str, text: str) -> str:
    stripped = text.lstrip()
    if stripped[:1] in "{[":
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError:
            return "log"
        return _json_kind(data)
    first = stripped.split("\n", 1)[0].strip()
    if first.startswith("Filesystem"):
        return "disk_usage"
    if "NVIDIA-SMI" in stripped[:2000] or "Unable to determine the device handle" in stripped[:2000]:
        return "gpu_status"
    if "Collecting environment information" in stripped[:200] or (
        "PyTorch version:" in stripped and "Is CUDA available" in stripped
    ):
        return "packages"
    lines = [line.strip() for line in stripped.splitlines() if line.strip() and not line.startswith("#")]
    if lines and sum(bool(_version_line(line)) for line in lines) >= 0.8 * len(lines):
        return "packages"
    if not is_log(name, text):
        header = {column_name(column) for column in first.split(",")}
        if {"worker", "step_time"} <= header:
            return "step_times"
        if {"src", "dst", "loss_pct"} <= header:
            return "network"
        if "step" in header:
            return "metrics"
    return "log"


_VERSION = r"v?\d+(?:\.\d+)+(?:[.+\-]?\w+)*"
_VERSION_FORMS = (
    re.compile(rf"^(?:\[(?:pip3?|conda)\]\s+)?([A-Za-z][\w.\-]*)\s*==\s*({_VERSION})\s*$"),  # pip freeze, collect_env
    re.compile(rf"^([A-Za-z][\w.\-]*)\s*[:=]\s*({_VERSION})\s*$"),  # torch: 2.3.0, torch=2.3.0
    re.compile(
        rf"^(?:\[conda\]\s+)?([A-Za-z][\w.\-]*)\s+({_VERSION})(?:\s+\S+){{0,3}}\s*$"
    ),  # torch 2.3.0 (conda list)
)
_COLLECT_ENV = {
    "pytorch version": "torch",
    "cuda used to build pytorch": "cuda-build",
    "cuda runtime version": "cuda-runtime",
    "nvidia driver version": "nvidia-driver",
    "python version": "python",
}


def _version_line(line: str) -> tuple[str, str] | None:
    for form in _VERSION_FORMS:
        found = form.match(line.strip())
        if found:
            return found.group(1), found.group(2)
    return None


def read_versions(text: str) -> dict[str, str]:
    """Package -> version from a version list as people paste it: ``pip freeze`` (``torch==2.3.0``), ``torch:
    2.3.0``, ``torch 2.3.0`` (``conda list`` columns), and ``collect_env`` output (its ``[pip3]``/``[conda]``
    lines and ``PyTorch version: 2.5.1+cu124``). Names are lower case with ``_`` as ``-``; comments and other
    lines are skipped."""
    found: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        key, _, value = line.partition(":")
        if key.strip().lower() in _COLLECT_ENV and value.strip():
            found[_COLLECT_ENV[key.strip().lower()]] = value.strip().split()[0]
            continue
        parsed = _version_line(line)
        if parsed:
            found[parsed[0].lower().replace("_", "-")] = parsed[1]
    return found


def _json_kind(data: Any) -> str:
    if not isinstance(data, dict):
        return "log"
    if isinstance(data.get("clients"), list):
        return "fl_round"
    if "trusted" in data and "received" in data:
        return "model_pair"
    if "channel_max_abs" in data:
        return "activation_stats"
    if "expert_seconds" in data:
        return "expert_stats"
    if isinstance(data.get("files"), list):
        return "checkpoint_manifest"
    return "log"


def kinds(artifacts: dict[str, str]) -> dict[str, str]:
    """Each artifact's kind."""
    return {name: kind_of(name, text) for name, text in artifacts.items()}


def read_json(name: str, text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ArtifactError(f"artifact {name!r} is not valid JSON: {error.msg} (line {error.lineno})") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"artifact {name!r} must hold a JSON object")
    return data


def read_table(name: str, text: str, *, required: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """CSV rows as dicts with lower-case column names (aliases mapped, ``COLUMN_ALIASES``); every ``required``
    column must be there."""
    reader = csv.DictReader(io.StringIO(text.strip()))
    if reader.fieldnames is None:
        raise ArtifactError(f"artifact {name!r} is empty")
    reader.fieldnames = [column_name(field) for field in reader.fieldnames]
    missing = [column for column in required if column not in reader.fieldnames]
    if missing:
        raise ArtifactError(f"artifact {name!r} has no column {', '.join(missing)} (columns: {reader.fieldnames})")
    return list(reader)


def number(value: Any, *, where: str) -> float:
    """A float from a CSV or JSON cell; ``nan``/``inf`` are kept (they are evidence), other text is an error."""
    if isinstance(value, bool):
        raise ArtifactError(f"{where}: expected a number, got {value!r}")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise ArtifactError(f"{where}: expected a number, got {str(value)[:40]!r}") from None
    return result


def finite(value: Any, *, where: str) -> float:
    result = number(value, where=where)
    if not math.isfinite(result):
        raise ArtifactError(f"{where}: expected a finite number, got {value!r}")
    return result
