"""``python -m thoughtgraph.evals diagnose``: diagnosis accuracy and cost on held-out incidents.

Scores: top-1 and top-3 root-cause category accuracy (Wilson 95% intervals), per category and as a confusion
table, abstentions (the report names no cause) apart from errors, component match (where the incident names
one, after normalisation), iterations,
tool calls, clarifying questions, and verification wall time (per wave, first start to last end) next to the
sum of the steps' own times. The knowledge base is mined from the history files only; an evaluated incident
whose id is in the history is refused (the shipped split is fixed: ``agents/diagnosis/corpus``). Results go
to ``OUT/results.jsonl`` one line per incident as it finishes; a rerun skips the incidents already finished
(the eval runner's resume: a line cut by a kill and an incident that errored run again).
Side-effecting steps are approved (they act on the incident's artifacts and are recorded in the run only).
A clarifying question (no workload kind) is answered with nothing: the run goes on without the fact and the
question is counted, never scored as an error.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from thoughtgraph.agents.diagnosis import diagnose_async, load_incidents, mine
from thoughtgraph.agents.diagnosis.api import NO_ANSWER
from thoughtgraph.agents.diagnosis.graph import VARIANTS
from thoughtgraph.agents.diagnosis.incidents import HISTORY, same_component
from thoughtgraph.agents.diagnosis.judge import UNKNOWN
from thoughtgraph.agents.diagnosis.knowledge import KnowledgeBase
from thoughtgraph.evals.files import checked_run_folder, open_log, write_file
from thoughtgraph.evals.report import wilson_interval
from thoughtgraph.evals.runner import read_samples, resume

RESULTS = "results.jsonl"
SUMMARY = "summary.json"


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)

    def rate(key: str, among: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        among = rows if among is None else among
        hits = sum(bool(r[key]) for r in among)
        low, high = wilson_interval(hits, len(among))
        return {"rate": hits / len(among) if among else 0.0, "hits": hits, "of": len(among), "ci95": [low, high]}

    def mean(key: str) -> float:
        return sum(r[key] for r in rows) / n if n else 0.0

    return {
        "incidents": n,
        "top1": rate("top1"),
        "top3": rate("top3"),
        "component": rate("component_match", [r for r in rows if r.get("component_match") is not None]),
        "abstentions": sum(1 for r in rows if r.get("abstained")),
        "per_category": per_category(rows),
        "confusion": confusion(rows),
        "mean_iterations": mean("iterations"),
        "mean_tool_calls": mean("tool_calls"),
        "questions": sum(r["questions"] for r in rows),
        "verification_seconds": sum(r["verification_seconds"] for r in rows),
        "verification_step_seconds": sum(r["verification_step_seconds"] for r in rows),
        "mean_seconds": mean("seconds"),
        "parse_failures": sum(r["parse_failures"] for r in rows),
        "model_calls": sum(r["model_calls"] for r in rows),
        "errors": sum(1 for r in rows if r.get("error")),
    }


def per_category(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Top-1 and top-3 hits per gold category."""
    table: dict[str, dict[str, Any]] = {}
    for row in rows:
        cell = table.setdefault(row["gold"], {"incidents": 0, "top1": 0, "top3": 0})
        cell["incidents"] += 1
        cell["top1"] += bool(row["top1"])
        cell["top3"] += bool(row["top3"])
    return dict(sorted(table.items()))


def confusion(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """gold category -> predicted category (``unknown`` for an abstention, ``error`` for a failed run) -> count."""
    table: dict[str, dict[str, int]] = {}
    for row in rows:
        predicted = "error" if row.get("error") else (row["predicted"] or "unknown")
        cell = table.setdefault(row["gold"], {})
        cell[predicted] = cell.get(predicted, 0) + 1
    return {gold: dict(sorted(cells.items())) for gold, cells in sorted(table.items())}


async def evaluate(
    incidents: str | Path,
    out: str | Path,
    *,
    backend: Any = None,
    variant: str = "full",
    history: list[str | Path] | None = None,
    kb: str | Path | None = None,
    limit: int | None = None,
    embeddings: str | None = None,
    grouping: str = "signature",
) -> dict[str, Any]:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    evaluated, problems = load_incidents(incidents)
    attachments = Path(incidents).resolve().parent if Path(incidents).is_file() else Path(incidents).resolve()
    unlabelled = [i.id for i in evaluated if i.root_cause is None]
    if unlabelled:
        raise ValueError(f"incidents to evaluate need a root cause; {unlabelled[0]} has none")
    if kb is not None:
        knowledge = KnowledgeBase.load(kb)
        sources = {i.id for i in knowledge.incidents}
    else:
        past, past_problems = load_incidents(*(history or [HISTORY]))
        problems += past_problems
        knowledge = mine(past, grouping)
        sources = {i.id for i in past}
    leaked = sorted(sources & {i.id for i in evaluated})
    if leaked:
        raise ValueError(f"held-out incident {leaked[0]} is in the knowledge base's sources ({len(leaked)} in all)")
    evaluated = evaluated[:limit] if limit else evaluated
    folder = checked_run_folder(Path(out))
    path = folder / RESULTS
    # the eval runner's resume: the log mended, a line cut by a kill and an incident that errored run again
    resume(path, finished_when=lambda row: row.get("error") is None)
    done = {row["id"]: row for row in read_samples(path)}
    with open_log(path) as results:
        for incident in evaluated:
            if incident.id in done:
                continue
            row = await _one(incident, knowledge, backend, variant, embeddings, attachments)
            results.write(json.dumps(row) + "\n")
            results.flush()
            done[incident.id] = row
    rows = [done[i.id] for i in evaluated if i.id in done]
    summary = {
        "variant": variant, "backend": getattr(backend, "spec", backend), "embeddings": embeddings, **summarise(rows)
    }  # fmt: skip
    summary["load_problems"] = [str(p) for p in problems]
    write_file(folder / SUMMARY, json.dumps(summary, indent=1))
    return summary


async def _one(
    incident: Any, knowledge: KnowledgeBase, backend: Any, variant: str, embeddings: str | None, attachments: Path
) -> dict[str, Any]:
    public = incident.public()
    gold = incident.root_cause
    started = time.perf_counter()
    row: dict[str, Any] = {
        "id": incident.id, "gold": gold.category, "gold_component": gold.component,
        "secondary": incident.secondary_categories,
    }  # fmt: skip
    try:
        diagnosis = await diagnose_async(
            public.report, workload=public.workload, artifacts=public.artifacts, incident_id=public.id,
            backend=backend, kb=knowledge, variant=variant, approve=True, embeddings=embeddings,
            attachments_dir=attachments, answer=NO_ANSWER,
        )  # fmt: skip
        report = diagnosis.report
        row.update(
            predicted=report["category"], top3_predicted=report["top3"], component=report["component"],
            confidence=report["confidence"], status=report["status"], iterations=report["iterations"],
            tool_calls=report["tool_calls"], questions=report["questions"],
            verification_seconds=report["verification_seconds"],
            verification_step_seconds=report["verification_step_seconds"],
            parse_failures=report["parse_failures"], model_calls=report["model_calls"], error=None,
        )  # fmt: skip
    except Exception as error:  # one broken incident must not lose the others: it is recorded and scored wrong
        row.update(
            predicted=None, top3_predicted=[], component=None, confidence=0.0, status="error", iterations=0,
            tool_calls=0, questions=0, verification_seconds=0.0, verification_step_seconds=0.0,
            parse_failures=0, model_calls=0, error=f"{type(error).__name__}: {error}",
        )  # fmt: skip
    row["top1"] = row["predicted"] == gold.category
    row["top3"] = gold.category in row["top3_predicted"]
    row["abstained"] = row["error"] is None and row["predicted"] in (None, UNKNOWN)
    row["component_match"] = same_component(row["component"], gold.component)
    row["seconds"] = time.perf_counter() - started
    return row


async def compare_variants(
    incidents: str | Path, out: str | Path, variants: list[str], **options: Any
) -> dict[str, dict[str, Any]]:
    """``evaluate`` once per variant on the same incidents (each in ``OUT/<variant>``, resumable), and the
    summaries side by side in ``OUT/comparison.json``: which parts of the graph carry these reports."""
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"variants must be some of {', '.join(VARIANTS)}, got {', '.join(variants) or 'none'}")
    summaries = {v: await evaluate(incidents, Path(out) / v, variant=v, **options) for v in variants}
    write_file(checked_run_folder(Path(out)) / "comparison.json", json.dumps(summaries, indent=1))
    return summaries


def comparison_table(summaries: dict[str, dict[str, Any]]) -> str:
    """The variants as a Markdown table: top-1 with its Wilson interval, top-3, abstentions, errors, questions."""

    def pct(value: float) -> str:
        return f"{100 * value:.1f}%"

    lines = [
        "| variant | top-1 (Wilson 95%) | top-3 | abstentions | errors | questions | seconds / incident |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant, s in summaries.items():
        low, high = s["top1"]["ci95"]
        lines.append(
            f"| {variant} | {pct(s['top1']['rate'])} ({pct(low)}-{pct(high)}) | {pct(s['top3']['rate'])} "
            f"| {s['abstentions']} | {s['errors']} | {s['questions']} | {s['mean_seconds']:.2f} |"
        )
    return "\n".join(lines)
