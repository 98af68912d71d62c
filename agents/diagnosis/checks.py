"""Verification steps: read-only inspectors over the user's artifacts, and the FL/systems tools of
``agents.tools`` where they fit. Each check runs in this process on the artifacts' text; none runs a shell
command or code from model text. A check returns named boolean *signals*; what a signal means for each
root-cause category is declared here (``Check.meaning``) and copied into the knowledge base's steps.

Effects: ``confirms``/``supports`` raise a hypothesis when the signal is present (and lower it when the
signal was looked for and is absent), ``weakens``/``refutes`` the opposite. The judge turns effects into
likelihood ratios (``agents.diagnosis.judge``).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from thoughtgraph.agents.diagnosis.artifacts import (
    ArtifactError,
    finite,
    kinds,
    number,
    read_json,
    read_table,
    read_versions,
)
from thoughtgraph.agents.diagnosis.signatures import signatures
from thoughtgraph.agents.tools.arrays import attachments_root
from thoughtgraph.agents.tools.fedreview import coordinate_median
from thoughtgraph.agents.tools.registry import TOOLS, ToolError, call_tool
from thoughtgraph.agents.tools.validation import InputError

Effect = Literal["confirms", "supports", "weakens", "refutes"]
MAX_MATCHES = 20


@dataclass
class CheckResult:
    summary: str
    signals: dict[str, bool] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    tools: list[str] = field(default_factory=list)
    """Registry tools (``agents.tools``) the check called: cited in the report."""
    error: str | None = None


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[dict[str, Any], dict[str, str]], CheckResult]
    needs: str
    """The artifact kind the check reads (its ``artifact`` argument is bound to one of that kind)."""
    meaning: dict[str, dict[str, Effect]]
    """signal -> category -> effect."""
    read_only: bool = True
    """False for a check that changes state (or calls a tool that does): it runs only after a person approves
    it. Decided by ``@check`` from the code's declarations; a knowledge-base file can mark a check as needing
    approval, never the reverse."""
    cost_seconds: float = 0.1
    depends_on: tuple[str, ...] = ()
    description: str = ""
    bind: Callable[[dict[str, str]], list[dict[str, str]]] | None = None
    """Artifact arguments for an incident's artifacts (name -> kind); default: ``artifact`` set to each artifact
    of the ``needs`` kind."""
    tools: tuple[str, ...] = ()
    """The registry tools the check may call (``agents.tools``); calling another is an error."""

    def bindings(self, artifact_kinds: dict[str, str]) -> list[dict[str, str]]:
        """One set of artifact arguments per step this check can run on these artifacts (none: not applicable)."""
        if self.bind is not None:
            return self.bind(artifact_kinds)
        return [{"artifact": name} for name, kind in artifact_kinds.items() if kind == self.needs]


CHECKS: dict[str, Check] = {}
CheckFunction = Callable[[dict[str, Any], dict[str, str]], CheckResult]


def check(
    name: str,
    *,
    needs: str,
    meaning: dict[str, dict[str, Effect]] | None = None,
    changes_state: bool = False,
    tools: tuple[str, ...] = (),
    depends_on: tuple[str, ...] = (),
    cost_seconds: float = 0.1,
    bind: Callable[[dict[str, str]], list[dict[str, str]]] | None = None,
    description: str = "",
) -> Callable[[CheckFunction], CheckFunction]:
    """Register ``function(arguments, artifacts) -> CheckResult`` as the diagnosis check ``name``. A check runs
    without approval only when it does not change state itself and calls no tool that does."""

    def register(function: CheckFunction) -> CheckFunction:
        if name in CHECKS:
            raise ValueError(f"check {name!r} is registered twice")
        unknown = [tool for tool in tools if tool not in TOOLS]
        if unknown:
            raise ValueError(f"check {name!r} names unknown tool(s) {unknown}")
        missing = [step for step in depends_on if step not in CHECKS]
        if missing:
            raise ValueError(f"check {name!r} depends on check(s) declared after it or nowhere: {missing}")
        read_only = not changes_state and not any(TOOLS[tool].needs_approval for tool in tools)
        CHECKS[name] = Check(
            name, function, needs, meaning or {}, read_only, cost_seconds, depends_on, description, bind, tools
        )
        return function

    return register


def _artifact(arguments: dict[str, Any], artifacts: dict[str, str]) -> tuple[str, str]:
    name = arguments.get("artifact")
    if not isinstance(name, str) or name not in artifacts:
        raise ArtifactError(f"no artifact named {name!r}; artifacts: {', '.join(artifacts) or 'none'}")
    return name, artifacts[name]


def _call(name: str, arguments: dict[str, Any], used: list[str]) -> dict[str, Any]:
    used.append(name)
    return call_tool(name, arguments)


# --- which artifacts a check reads ------------------------------------------------------------------


def _every_log(artifact_kinds: dict[str, str]) -> list[dict[str, str]]:
    """A log search reads every log at once: one step, no artifact argument, if there is a log at all."""
    return [{}] if "log" in artifact_kinds.values() else []


def _installed_and_required(artifact_kinds: dict[str, str]) -> list[dict[str, str]]:
    """``pip freeze`` output against a requirements/constraints/lock file, told apart by name."""
    found = [name for name, kind in artifact_kinds.items() if kind == "packages"]
    required = [name for name in found if re.search(r"require|constraint|lock", name, re.IGNORECASE)]
    installed = [name for name in found if name not in required]
    return [{"artifact": installed[0], "required": required[0]}] if installed and required else []


# --- logs ---------------------------------------------------------------------------------------------


@check("log_search", needs="log", bind=_every_log, description="search the logs for a phrase, with context")
def log_search(arguments: dict[str, Any], artifacts: dict[str, str]) -> CheckResult:
    """Literal, case-insensitive search of every log artifact (or the named one), with context lines."""
    pattern = arguments.get("pattern")
    if not isinstance(pattern, str) or not pattern.strip() or len(pattern) > 200:
        raise ArtifactError("log_search needs a pattern: a non-empty string of at most 200 characters")
    context = int(min(max(number(arguments.get("context", 1), where="context"), 0), 5))
    names = (
        [arguments["artifact"]] if arguments.get("artifact") else [n for n, k in kinds(artifacts).items() if k == "log"]
    )
    needle = re.compile(re.escape(pattern.strip()), re.IGNORECASE)
    matches = []
    for name in names:
        if name not in artifacts:
            raise ArtifactError(f"no artifact named {name!r}")
        lines = artifacts[name].splitlines()
        for index, line in enumerate(lines):
            if needle.search(line):
                lo, hi = max(0, index - context), min(len(lines), index + context + 1)
                matches.append({"artifact": name, "line": index + 1, "context": lines[lo:hi]})
                if len(matches) >= MAX_MATCHES:
                    break
    found = bool(matches)
    summary = f"{len(matches)} line(s) match {pattern!r}" + (
        f", first: {matches[0]['context'][min(context, matches[0]['line'] - 1)][:160]!r}" if found else ""
    )
    return CheckResult(summary, {"found": found}, {"matches": matches})


@check("error_signatures", needs="log", description="normalised error signatures of a log")
def error_signatures(arguments: dict[str, Any], artifacts: dict[str, str]) -> CheckResult:
    name, text = _artifact(arguments, artifacts)
    found = signatures(text)
    return CheckResult(
        f"{len(found)} error signature(s) in {name}" + (f": {found[0][:120]!r}" if found else ""),
        {},
        {"signatures": found},
    )


@check(
    "collective_sequence",
    needs="log",
    meaning={"desync": {"collective_timeout": "confirms", "network_partition": "weakens", "straggler": "weakens"}},
    description="compare NCCL watchdog sequence numbers across ranks",
)
def collective_sequence(arguments: dict[str, Any], artifacts: dict[str, str]) -> CheckResult:
    """Per-rank sequence numbers of the collectives NCCL's watchdog reports: ranks at different SeqNum means
    they called different collectives (a desynchronised program), not a slow network."""
    name, text = _artifact(arguments, artifacts)
    last: dict[str, int] = {}
    for line in text.splitlines():
        seq = re.search(r"SeqNum=(\d+)", line)
        rank = re.search(r"\[Rank (\d+)\]|\[rank(\d+)\]", line)
        if seq and rank:
            last[rank.group(1) or rank.group(2)] = int(seq.group(1))
    if not last:
        return CheckResult(f"no watchdog SeqNum lines in {name}", {}, {})
    desync = len(set(last.values())) > 1
    verdict = "differ" if desync else "agree"
    summary = f"{len(last)} rank(s) report collectives; sequence numbers {verdict}: {dict(sorted(last.items()))}"
    return CheckResult(summary, {"desync": desync}, {"seq_by_rank": last})


@check(
    "disk_usage",
    needs="disk_usage",
    meaning={"disk_full": {"disk_full": "confirms", "checkpoint_corruption": "weakens"}},
    description="read df output",
)
def disk_usage(arguments: dict[str, Any], artifacts: dict[str, str]) -> CheckResult:
    """``df`` output: the fullest filesystem and whether it is (nearly) full."""
    name, text = _artifact(arguments, artifacts)
    usage = {}
    for line in text.splitlines()[1:]:
        parts = line.split()
        percent = next((p for p in parts if p.endswith("%") and p[:-1].isdigit()), None)
        if percent and parts:
            usage[parts[-1]] = int(percent[:-1])
    if not usage:
        raise ArtifactError(f"artifact {name!r} has no df rows with a Use% column")
    mount, used = max(usage.items(), key=lambda item: item[1])
    return CheckResult(f"fullest filesystem {mount} at {used}%", {"disk_full": used >= 97}, {"use_percent": usage})


@check(
    "package_versions",
    needs="packages",
    meaning={"version_drift": {"version_mismatch": "confirms"}},
    bind=_installed_and_required,
    description="installed packages against pinned requirements",
)
def package_versions(arguments: dict[str, Any], artifacts: dict[str, str]) -> CheckResult:
    """Installed packages (``pip freeze``) against the pinned requirements: every pin that differs."""

    _, installed_text = _artifact({"artifact": arguments.get("artifact")}, artifacts)
    _, required_text = _artifact({"artifact": arguments.get("required")}, artifacts)
    installed, required = read_versions(installed_text), read_versions(required_text)
    drift = {
        p: {"required": v, "installed": installed.get(p, "missing")}
        for p, v in required.items()
        if installed.get(p) != v
    }
    summary = f"{len(drift)} of {len(required)} pinned package(s) differ" + (f": {drift}" if drift else "")
    return CheckResult(summary, {"version_drift": bool(drift)}, {"differences": drift})


_SMI_ROW = re.compile(r"(\d+)C\s+P\d+.*?\|\s*(\d+)MiB\s*/\s*(\d+)MiB")
_SMI_FAULT = re.compile(r"ERR!|Unknown Error|Unable to determine the device handle|GPU is lost|fallen off the bus")
HOT_CELSIUS = 85
FULL_MEMORY = 0.95


@check(
    "gpu_health",
    needs="gpu_status",
    meaning={
        "gpu_fault": {"hardware_fault": "confirms"},
        "gpu_hot": {"hardware_fault": "supports"},
        "memory_full": {"gpu_oom": "supports"},
    },
    description="nvidia-smi output: lost or erroring GPUs, temperature, memory in use",
)
def gpu_health(arguments: dict[str, Any], artifacts: dict[str, str]) -> CheckResult:
    """``nvidia-smi`` output: a GPU the driver lost or reports ``ERR!`` for, a GPU at ``HOT_CELSIUS`` or more,
    memory in use at ``FULL_MEMORY`` of the total or more."""
    name, text = _artifact(arguments, artifacts)
    faults = [line.strip()[:160] for line in text.splitlines() if _SMI_FAULT.search(line)]
    rows = [(int(t), int(used), int(total)) for t, used, total in _SMI_ROW.findall(text)]
    if not rows and not faults:
        raise ArtifactError(f"artifact {name!r} has no GPU row of nvidia-smi (temperature and memory columns)")
    hot = [t for t, _, _ in rows if t >= HOT_CELSIUS]
    full = [f"{used}/{total} MiB" for _, used, total in rows if total and used / total >= FULL_MEMORY]
    summary = (
        f"{len(rows)} GPU row(s): {len(faults)} fault line(s), {len(hot)} at {HOT_CELSIUS}C or more, "
        f"{len(full)} with memory {FULL_MEMORY:.0%} full" + (f"; {faults[0]}" if faults else "")
    )
    return CheckResult(
        summary,
        {"gpu_fault": bool(faults), "gpu_hot": bool(hot), "memory_full": bool(full)},
        {"faults": faults[:MAX_MATCHES], "temperatures": [t for t, _, _ in rows], "memory_full": full},
    )


# --- metrics ------------------------------------------------------------------------------------------


def _series(rows: list[dict[str, str]], column: str, name: str) -> np.ndarray:
    return np.array([number(row[column], where=f"{name} row {i + 2} column {column}") for i, row in enumerate(rows)])


@check(
    "metric_anomalies",
    needs="metrics",
    meaning={
        "grad_norm_spike": {"loss_divergence": "supports"},
        "memory_gb_growth": {"gpu_oom": "supports"},
        "loss_nan": {"loss_divergence": "supports", "low_precision_outliers": "supports"},
    },
    description="non-finite values, spikes and growth of a metric column",
)
def metric_anomalies(arguments: dict[str, Any], artifacts: dict[str, str]) -> CheckResult:
    """One metric column: non-finite values, spikes (above the median by 10 MADs and 3x), sustained growth."""
    name, text = _artifact(arguments, artifacts)
    column = str(arguments.get("column", "loss")).lower()
    values = _series(read_table(name, text, required=(column,)), column, name)
    if values.size < 3:
        raise ArtifactError(f"artifact {name!r} has {values.size} rows; at least 3 are needed")
    good = values[np.isfinite(values)]
    non_finite = int(values.size - good.size)
    spike = growth = False
    if good.size >= 3:
        median = float(np.median(good))
        mad = float(np.median(np.abs(good - median))) or 1e-12
        spike = bool(np.any((good > median + 10 * mad) & (good > 3 * abs(median))))
        rising = float(np.mean(np.diff(good) >= 0))
        start, end = float(good[:3].mean()), float(good[-3:].mean())
        growth = bool(rising >= 0.7 and end - start > 0.2 * abs(start) > 0)
    signals = {f"{column}_nan": non_finite > 0, f"{column}_spike": spike, f"{column}_growth": growth}
    summary = f"{column}: {values.size} points, {non_finite} non-finite, spike {spike}, growth {growth}"
    if good.size:
        summary += f", range {good.min():.4g}..{good.max():.4g}"
    return CheckResult(summary, signals, {"points": int(values.size), "non_finite": non_finite})


@check(
    "worker_step_spread",
    needs="step_times",
    meaning={
        "slow_worker": {"straggler": "confirms", "dataloader_stall": "weakens"},
        "data_wait": {"dataloader_stall": "confirms", "straggler": "weakens"},
    },
    tools=("lbbsp_batch_sizes",),
    cost_seconds=0.3,
    description="per-worker step-time spread, data wait, and LB-BSP's batch split",
)
def worker_step_spread(arguments: dict[str, Any], artifacts: dict[str, str]) -> CheckResult:
    """Per-worker step times: one worker much slower than the median (a straggler) versus every worker
    waiting on data. LB-BSP (``lbbsp_batch_sizes``) then proposes the batch split that evens them out."""
    name, text = _artifact(arguments, artifacts)
    rows = read_table(name, text, required=("worker", "step_time"))
    by_worker: dict[str, list[float]] = {}
    data_time = 0.0
    for i, row in enumerate(rows):
        by_worker.setdefault(row["worker"], []).append(finite(row["step_time"], where=f"{name} row {i + 2}"))
        if row.get("data_time"):
            data_time += finite(row["data_time"], where=f"{name} row {i + 2} data_time")
    if len(by_worker) < 2:
        raise ArtifactError(f"artifact {name!r} needs step times of at least 2 workers")
    means = {worker: float(np.mean(times)) for worker, times in by_worker.items()}
    median = float(np.median(list(means.values())))
    slowest = max(means, key=means.__getitem__)
    ratio = means[slowest] / median if median > 0 else math.inf
    wait_share = data_time / max(sum(sum(t) for t in by_worker.values()), 1e-12)
    used: list[str] = []
    details: dict[str, Any] = {"mean_step_time": means, "slowest": slowest, "slowest_over_median": ratio}
    steps = min(len(t) for t in by_worker.values())
    if steps >= 1:
        batch = int(arguments.get("batch_per_worker", 32))
        proposal = _call(
            "lbbsp_batch_sizes",
            {
                "global_batch": batch * len(by_worker),
                "batch_history": [[batch] * steps for _ in by_worker],
                "time_history": [by_worker[w][:steps] for w in by_worker],
            },
            used,
        )
        details["lbbsp_batch_sizes"] = dict(zip(by_worker, proposal["batch_sizes"], strict=True))
    summary = (
        f"slowest worker {slowest} at {ratio:.2f}x the median step time; data loading {wait_share:.0%} of step time"
    )
    if "lbbsp_batch_sizes" in details:
        summary += f"; LB-BSP split: {details['lbbsp_batch_sizes']}"
    details["data_wait_share"] = wait_share
    return CheckResult(summary, {"slow_worker": ratio >= 1.3, "data_wait": wait_share >= 0.3}, details, used)


@check(
    "network_probe",
    needs="network",
    meaning={"packet_loss": {"network_partition": "confirms", "collective_timeout": "weakens"}},
    description="packet loss between nodes",
)
def network_probe(arguments: dict[str, Any], artifacts: dict[str, str]) -> CheckResult:
    """Node-to-node probes (src, dst, loss_pct[, rtt_ms]): packet loss between nodes."""
    name, text = _artifact(arguments, artifacts)
    rows = read_table(name, text, required=("src", "dst", "loss_pct"))
    lossy = [
        (row["src"], row["dst"], finite(row["loss_pct"], where=f"{name} row {i + 2} loss_pct"))
        for i, row in enumerate(rows)
    ]
    bad = [(s, d, loss) for s, d, loss in lossy if loss >= 5]
    summary = f"{len(bad)} of {len(lossy)} node pair(s) lose >= 5% of packets" + (f": {bad[:4]}" if bad else "")
    return CheckResult(summary, {"packet_loss": bool(bad)}, {"lossy_pairs": bad})


# --- federated learning ---------------------------------------------------------------------------------


def _fl_updates(name: str, text: str) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    data = read_json(name, text)
    clients = data.get("clients")
    if not isinstance(clients, list) or len(clients) < 3:
        raise ArtifactError(f"artifact {name!r} needs a 'clients' list of at least 3 clients")
    ids, rows = [], []
    for i, client in enumerate(clients):
        update = client.get("update") if isinstance(client, dict) else None
        if not isinstance(update, list) or not update:
            raise ArtifactError(f"artifact {name!r}: client {i} has no 'update' list")
        ids.append(str(client.get("id", i)))
        rows.append([finite(v, where=f"{name} client {i} update") for v in update])
    if len({len(r) for r in rows}) != 1:
        raise ArtifactError(f"artifact {name!r}: client updates have different lengths")
    return ids, np.array(rows), data


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / norm) if norm > 0 else 0.0


@check(
    "fl_update_review",
    needs="fl_round",
    meaning={
        "outlier_clients": {"poisoned_update": "confirms", "fl_client_drift": "weakens"},
        "broad_divergence": {"fl_client_drift": "supports"},
        "label_skew": {"fl_client_drift": "supports"},
        "stale_clients": {"fl_client_drift": "supports"},
    },
    tools=("pisces_aggregation_weights",),
    cost_seconds=0.3,
    description="outlier client updates (FedReview rule), drift, label skew, Pisces weights",
)
def fl_update_review(arguments: dict[str, Any], artifacts: dict[str, str]) -> CheckResult:
    """One FL round's client updates. FedReview's reviewer rule (flag what lies more than 3 MADs above the
    median) applied to each update's distance from the coordinate-wise median, since we have the updates,
    not reviewer data; ours on top: a flagged update must also be 1.5x the median distance away (among
    near-identical updates the MAD is near zero and the rule alone flags noise); broad divergence (low
    agreement among unflagged clients), label skew and staleness
    point to client drift; Pisces' aggregation weights show how much stale clients count."""
    name, text = _artifact(arguments, artifacts)
    ids, updates, data = _fl_updates(name, text)
    median = coordinate_median(updates)
    distance = np.linalg.norm(updates - median, axis=1)
    centre = float(np.median(distance))
    mad = float(np.median(np.abs(distance - centre))) or 1e-12
    flagged = [ids[i] for i in np.flatnonzero(distance > centre + 3 * mad) if distance[i] > 1.5 * centre]
    honest = np.array([i for i, c in enumerate(ids) if c not in flagged])
    mean = updates[honest].mean(axis=0)
    agreement = float(np.mean([_cosine(updates[i], mean) for i in honest]))
    details: dict[str, Any] = {
        "flagged": flagged,
        "agreement": agreement,
        "distance_to_median": dict(zip(ids, distance.round(4).tolist(), strict=True)),
    }
    signals = {"outlier_clients": 0 < len(flagged) <= len(ids) // 2, "broad_divergence": agreement < 0.5}
    used: list[str] = []
    clients = data["clients"]
    labels = [c.get("label_counts") for c in clients]
    if all(isinstance(x, list) and x for x in labels):
        shares = np.array([[finite(v, where=f"{name} label_counts") for v in x] for x in labels])
        shares = shares / np.maximum(shares.sum(axis=1, keepdims=True), 1e-12)
        overall = shares.mean(axis=0)
        skew = float(np.mean(0.5 * np.abs(shares - overall).sum(axis=1)))
        details["label_skew"] = skew
        signals["label_skew"] = skew >= 0.4
    staleness = [c.get("staleness") for c in clients]
    samples = [c.get("samples") for c in clients]
    if all(isinstance(s, int | float) for s in staleness) and all(
        isinstance(n, int | float) and n > 0 for n in samples
    ):
        weights = _call(
            "pisces_aggregation_weights", {"samples": samples, "staleness": staleness, "renormalise": True}, used
        )
        details["pisces_weights"] = dict(zip(ids, [round(w, 4) for w in weights["weights"]], strict=True))
        signals["stale_clients"] = max(staleness) >= 5
    summary = f"{len(flagged)} of {len(ids)} update(s) are outliers {flagged}; unflagged agreement {agreement:.2f}"
    if "label_skew" in details:
        summary += f"; label skew {details['label_skew']:.2f}"
    return CheckResult(summary, signals, details, used)


@check(
    "quarantine_clients",
    needs="fl_round",
    meaning={"recovers": {"poisoned_update": "confirms"}},
    changes_state=True,
    depends_on=("fl_update_review",),
    cost_seconds=1.0,
    description="exclude the flagged clients from the next round and re-aggregate without them",
)
def quarantine_clients(arguments: dict[str, Any], artifacts: dict[str, str]) -> CheckResult:
    """CHANGES STATE: excludes the flagged clients from the next aggregation (the exclusion is recorded in the
    session as an applied action, ``Diagnosis.actions``, for the FL server operator to apply) and re-aggregates
    this round without them:
    if the aggregate then moves back to the coordinate-wise median (within half its former distance, from at
    least 0.3 of the median's norm), the flagged updates were the cause."""
    name, text = _artifact(arguments, artifacts)
    ids, updates, _ = _fl_updates(name, text)
    excluded = [str(c) for c in arguments.get("clients") or []]
    if not excluded:
        raise ArtifactError("quarantine_clients needs the clients to exclude (from fl_update_review)")
    keep = np.array([i for i, c in enumerate(ids) if c not in excluded])
    if keep.size == 0:
        raise ArtifactError("quarantine_clients would exclude every client")
    median = coordinate_median(updates)
    scale = max(float(np.linalg.norm(median)), 1e-12)
    before = float(np.linalg.norm(updates.mean(axis=0) - median)) / scale
    after = float(np.linalg.norm(updates[keep].mean(axis=0) - median)) / scale
    recovers = before >= 0.3 and after <= before / 2
    summary = (
        f"excluding {excluded}: aggregate's distance from the median update {before:.2f} -> {after:.2f} (relative)"
    )
    return CheckResult(summary, {"recovers": recovers}, {"excluded": excluded, "before": before, "after": after})


@check(
    "model_integrity",
    needs="model_pair",
    meaning={"tampered": {"gradient_leakage": "confirms", "poisoned_update": "weakens"}},
    tools=("check_received_model",),
    cost_seconds=0.3,
    description="received global model against the trusted one",
)
def model_integrity(arguments: dict[str, Any], artifacts: dict[str, str]) -> CheckResult:
    """The global model a client received against the last one it trusted (``check_received_model``:
    Hear No Evil style trap layers that make a model leak its training data)."""
    name, text = _artifact(arguments, artifacts)
    data = read_json(name, text)
    used: list[str] = []
    result = _call("check_received_model", {"trusted": data["trusted"], "received": data["received"]}, used)
    findings = result.get("findings", [])
    summary = "received model " + (
        "is suspicious: " + "; ".join(map(str, findings[:3]))
        if result["suspicious"]
        else "matches the trusted one within limits"
    )
    return CheckResult(summary, {"tampered": bool(result["suspicious"])}, {"findings": findings}, used)


# --- systems ----------------------------------------------------------------------------------------------


@check(
    "hot_channels",
    needs="activation_stats",
    meaning={"hot_channels": {"low_precision_outliers": "confirms", "loss_divergence": "weakens"}},
    tools=("nvfp4_hot_channels",),
    cost_seconds=0.2,
    description="persistent hot activation channels (NVFP4 detector)",
)
def hot_channels(arguments: dict[str, Any], artifacts: dict[str, str]) -> CheckResult:
    """Per-step per-channel max |activation|: persistent hot channels that low-precision (NVFP4/FP8) blocks
    clip (``nvfp4_hot_channels``)."""
    name, text = _artifact(arguments, artifacts)
    data = read_json(name, text)
    used: list[str] = []
    result = _call("nvfp4_hot_channels", {"channel_max_abs": data["channel_max_abs"]}, used)
    persistent = result["persistent"]
    summary = f"{len(persistent)} persistent hot channel(s) {persistent[:8]}, {len(result['transient'])} transient"
    return CheckResult(
        summary, {"hot_channels": bool(persistent)}, {k: result[k] for k in ("persistent", "transient")}, used
    )


@check(
    "moe_cost",
    needs="expert_stats",
    meaning={"overprovisioned": {"moe_serving_cost": "confirms"}},
    tools=("remoe_plan_experts",),
    cost_seconds=0.5,
    description="MoE serving cost against Remoe's plan",
)
def moe_cost(arguments: dict[str, Any], artifacts: dict[str, str]) -> CheckResult:
    """The MoE deployment's cost against Remoe's plan for the same experts and SLO (``remoe_plan_experts``,
    our pay-per-use cost model): a deployment costing 1.5x the plan or more is over-provisioned."""
    name, text = _artifact(arguments, artifacts)
    data = read_json(name, text)
    used: list[str] = []
    common = {
        key: data[key]
        for key in (
            "expert_seconds",
            "expert_memory_gb",
            "slo_seconds",
            "price_per_gb_second",
            "full_speed_gb",
            "reference_gb",
        )
        if key in data
    }
    deployed = finite(data.get("deployed_memory_gb"), where=f"{name} deployed_memory_gb")
    current = _call(
        "remoe_plan_experts",
        {**common, "memory_options_gb": [deployed], "max_replicas": int(data.get("deployed_replicas", 1))},
        used,
    )
    plan = _call("remoe_plan_experts", {**common, "memory_options_gb": data.get("memory_options_gb", [deployed])}, used)
    ratio = current["cost"] / plan["cost"] if plan["cost"] > 0 else 1.0
    summary = (
        f"deployed cost {current['cost']:.4g} vs Remoe plan {plan['cost']:.4g} ({ratio:.2f}x) at {plan['memory_gb']} GB"
    )
    return CheckResult(
        summary,
        {"overprovisioned": ratio >= 1.5 and plan["feasible"]},
        {"cost_ratio": ratio, "plan_memory_gb": plan["memory_gb"]},
        used,
    )


@check(
    "checkpoint_manifest",
    needs="checkpoint_manifest",
    meaning={"hash_mismatch": {"checkpoint_corruption": "supports"}},
    description="checkpoint files against their manifest",
)
def checkpoint_manifest(arguments: dict[str, Any], artifacts: dict[str, str]) -> CheckResult:
    """Checkpoint files against their manifest: hashes that differ, files shorter than recorded."""
    name, text = _artifact(arguments, artifacts)
    files = read_json(name, text)["files"]
    mismatched, truncated = [], []
    for i, entry in enumerate(files):
        if not isinstance(entry, dict):
            raise ArtifactError(f"artifact {name!r}: files[{i}] is not an object")
        if entry.get("sha256") and entry.get("expected_sha256") and entry["sha256"] != entry["expected_sha256"]:
            mismatched.append(entry.get("name", i))
        if (
            "size" in entry
            and "expected_size" in entry
            and finite(entry["size"], where=f"{name} files[{i}].size")
            < finite(entry["expected_size"], where=f"{name} files[{i}].expected_size")
        ):
            truncated.append(entry.get("name", i))
    summary = f"{len(mismatched)} of {len(files)} file(s) fail their hash, {len(truncated)} shorter than recorded"
    return CheckResult(
        summary,
        {"hash_mismatch": bool(mismatched), "truncated": bool(truncated)},
        {"mismatched": mismatched, "truncated": truncated},
    )


def run_check(
    name: str, arguments: dict[str, Any], artifacts: dict[str, str], attachments_dir: str | None = None
) -> tuple[CheckResult, float]:
    """Run one check; bad artifacts, bad arguments and tool errors come back as an error observation. File
    paths inside artifacts are read only from ``attachments_dir`` (default: the working directory)."""
    started = time.perf_counter()
    check = CHECKS.get(name)
    if check is None:
        result = CheckResult(f"check error: no check named {name!r}", error=f"unknown check {name!r}")
    else:
        try:
            with attachments_root(attachments_dir or "."):
                result = check.run(arguments, artifacts)
            undeclared = sorted(set(result.tools) - set(check.tools))
            if undeclared:  # a bug in the check: its declaration is what approval is decided from
                raise ValueError(f"the check called tool(s) {undeclared} it does not declare")
        except (ArtifactError, ToolError, InputError, KeyError, TypeError, ValueError) as error:
            message = str(error) if not isinstance(error, KeyError) else f"missing field {error}"
            result = CheckResult(f"check error: {name}: {message}", error=message)
    return result, time.perf_counter() - started
