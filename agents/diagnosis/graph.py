"""Online phase: the diagnosis graph of agents (LangGraph).

intake -> [clarify] -> retrieve -> hypothesise -> plan -> approve -> verify (one ``Send`` per ready step)
-> judge -> plan ... -> report

- intake normalises the report (deterministic facts, plus the intake agent where a model is given) and asks
  one clarifying question (``interrupt``) only when a required fact - the workload kind - is missing;
- retrieve matches troubleshooting-guide entries and past incidents (BM25), and the report's text and logs
  against the error strings CUDA, NCCL, PyTorch, DeepSpeed, vLLM and Flower print (``known_errors.py``);
- hypothesise builds the table of hypotheses (at most 5; at least 2 whenever retrieval or the model names
  two causes - with neither, the table is empty and the report names no cause): retrieval priors, updated by
  the known error strings found (a likelihood ratio per cause), raised for the causes the hypothesise agent
  proposes (its evidence for/against goes into the table);
- plan takes the verification steps of the leading hypotheses (the knowledge base's, bound to this incident's
  artifacts by kind) as a dependency graph and releases the steps whose dependencies have run;
- approve asks the user (``interrupt``) before any step that changes state; it does nothing before asking,
  since a resumed node runs again from its start; declined steps are recorded and skipped;
- verify runs the ready steps in parallel (``variant="sequential"``: one after another, same steps);
- judge updates the posteriors (``judge.py``) and loops to plan until a hypothesis is confirmed, all are
  refuted, no step is left, or a budget is spent;
- report states the root cause, component, confidence, evidence with the step that produced it,
  mitigation, and every step run with its timing.

Variants (for evaluation): ``full``; ``sequential`` (same, verification one step at a time);
``retrieval-only`` (knowledge-base retrieval alone: no error-string matching, no verification); ``no-tools``
(the model alone: no retrieval, no matching, no verification).
The design is ours: TSGuard's internals are not public.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import operator
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send, interrupt

from thoughtgraph.agents.diagnosis import judge, known_errors
from thoughtgraph.agents.diagnosis.artifacts import kinds
from thoughtgraph.agents.diagnosis.checks import CHECKS, run_check
from thoughtgraph.agents.diagnosis.incidents import CATEGORIES, Incident
from thoughtgraph.agents.diagnosis.knowledge import KnowledgeBase, StepTemplate, query_text, step_template
from thoughtgraph.agents.diagnosis.llm import DiagnosisAgents, HypothesesReply, IntakeReply, ReportReply
from thoughtgraph.agents.diagnosis.signatures import is_log, signatures

Variant = Literal["full", "sequential", "retrieval-only", "no-tools"]
VARIANTS: tuple[str, ...] = ("full", "sequential", "retrieval-only", "no-tools")
LLM_WEIGHT = 0.15
"""Prior mass added to a cause the hypothesise agent proposes (rank r gets LLM_WEIGHT / (r + 1))."""
LEADING = 3
"""Hypotheses whose steps are planned each round (those with posterior >= 0.05)."""
KIND_WORDS = {
    "federated": ("federated", " fl ", "flower", "clients", "client"),
    "inference": ("inference", "serving", "endpoint", "vllm", "serve"),
    "fine-tuning": ("fine-tun", "finetun", "lora", "sft"),
    "training": ("training", "pretrain", "train", "step time", "loss"),
}


@dataclass
class Limits:
    max_iterations: int = 3
    """Verify-judge rounds."""
    max_steps: int = 12
    """Verification steps run in all."""

    def __post_init__(self) -> None:
        if self.max_iterations < 1 or self.max_steps < 1:
            raise ValueError("max_iterations and max_steps must be at least 1")


@dataclass
class DiagnosisRuntime:
    """What the graph's nodes use and the checkpoint does not hold: the knowledge base, the model, limits."""

    kb: KnowledgeBase | None
    agents: DiagnosisAgents | None
    variant: Variant = "full"
    limits: Limits = field(default_factory=Limits)
    attachments_dir: str | None = None
    """Where file paths inside artifacts are read from (default: the working directory); never checkpointed,
    so a session file cannot widen it."""

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")


class DiagnosisState(TypedDict, total=False):
    settings: dict[str, Any]
    """How the session was started (backend spec, knowledge base, variant, limits): a resumed session uses them."""
    incident: dict[str, Any]
    facts: dict[str, Any]
    question: str | None
    answers: list[str]
    retrieved: list[dict[str, Any]]
    similar: list[dict[str, Any]]
    known_errors: list[dict[str, str]]
    priors: dict[str, float]
    hypotheses: list[dict[str, Any]]
    posteriors: dict[str, float]
    plan: list[dict[str, Any]]
    ready: list[str]
    approvals: dict[str, bool]
    observations: Annotated[list[dict[str, Any]], operator.add]
    judged: int
    effects: dict[str, list[dict[str, Any]]]
    """Per observed step, what it said about each category (judge.effects)."""
    iteration: int
    status: str
    report: dict[str, Any]
    parse_failures: Annotated[int, operator.add]
    model_calls: Annotated[int, operator.add]
    followups: list[dict[str, str]]


def infer_kind(text: str) -> str | None:
    lowered = f" {text.lower()} "
    for kind, words in KIND_WORDS.items():
        if any(word in lowered for word in words):
            return kind
    return None


def _step_id(check: str, arguments: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(arguments, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{check}#{digest}"


def bind(template: StepTemplate, artifact_kinds: dict[str, str]) -> list[dict[str, Any]]:
    """The template's steps for this incident: one per set of artifact arguments its check binds to (none when
    the user gave no artifact the check reads). A dependency is the named check on the same artifact."""
    steps = []
    for bound in CHECKS[template.check].bindings(artifact_kinds):
        arguments = {**template.arguments, **bound}
        steps.append(
            {
                "id": _step_id(template.check, arguments),
                "check": template.check,
                "arguments": arguments,
                "meaning": template.meaning,
                # side effects are the check's own (declared in checks.py); a knowledge base can only add caution
                "read_only": CHECKS[template.check].read_only and template.read_only,
                "cost_seconds": template.cost_seconds,
                "depends_on": [_step_id(d, {"artifact": arguments.get("artifact")}) for d in template.depends_on],
            }
        )
    return steps


def default_steps(category: str) -> list[StepTemplate]:
    """The catalogue's checks that confirm or support a category, with their default arguments (used where the
    knowledge base has no step for it)."""
    found = []
    for check in CHECKS.values():
        if any(effects.get(category) in ("confirms", "supports") for effects in check.meaning.values()):
            found.append(step_template(check.name, {}, category))
    return [s for s in found if s is not None]


async def intake(runtime: DiagnosisRuntime, state: DiagnosisState) -> dict[str, Any]:
    incident = state["incident"]
    artifacts = incident.get("artifacts", {})
    facts: dict[str, Any] = {
        "artifact_kinds": kinds(artifacts),
        "signatures": [s for n, t in artifacts.items() if is_log(n, t) for s in signatures(t, limit=5)][:10],
        "workload_kind": incident.get("workload", {}).get("kind") or infer_kind(incident["report"]),
    }
    update: dict[str, Any] = {"facts": facts, "iteration": 0, "judged": 0, "plan": [], "approvals": {}}
    if runtime.agents is not None:
        reply = await runtime.agents.ask(
            "intake", IntakeReply, report=incident["report"], facts=json.dumps(incident.get("workload", {})),
            artifacts=", ".join(f"{n} ({k})" for n, k in facts["artifact_kinds"].items()) or "none",
        )  # fmt: skip
        update["model_calls"] = 1
        if reply is None:
            update["parse_failures"] = 1
        else:
            facts["symptoms"] = reply.symptoms
            if facts["workload_kind"] is None and reply.workload_kind != "unknown":
                facts["workload_kind"] = reply.workload_kind
    asked = bool(state.get("answers"))
    update["question"] = (
        "What kind of job is this: training, fine-tuning, inference or federated learning?"
        if facts["workload_kind"] is None and not asked
        else None
    )
    return update


def clarify(state: DiagnosisState) -> dict[str, Any]:
    answer = str(interrupt({"kind": "question", "question": state["question"]}) or "")
    facts = dict(state["facts"])
    facts["workload_kind"] = infer_kind(answer) or facts.get("workload_kind")
    return {"answers": [*state.get("answers", []), answer], "facts": facts, "question": None}


def retrieve(runtime: DiagnosisRuntime, state: DiagnosisState) -> dict[str, Any]:
    found = known_error_matches(state["incident"]) if runtime.variant in ("full", "sequential") else []
    if runtime.kb is None or runtime.variant == "no-tools":
        return {"retrieved": [], "similar": [], "priors": {}, "known_errors": found}
    query = query_text(Incident.model_validate(state["incident"])) + " " + " ".join(state.get("answers", []))
    # retrieved once; the priors come from them
    entries, incidents = runtime.kb.retrieve(query), runtime.kb.similar(query)
    retrieved = [
        {"id": e.id, "signature": e.signature, "hypotheses": e.hypotheses, "score": round(s, 3), "title": e.title}
        for e, s in entries
    ]
    similar = [{"id": i.id, "category": i.category, "score": round(s, 3)} for i, s in incidents]
    priors = runtime.kb.priors_of(entries, incidents)
    return {"retrieved": retrieved, "similar": similar, "priors": priors, "known_errors": found}


def known_error_matches(incident: dict[str, Any]) -> list[dict[str, str]]:
    """Known error strings in the report and its logs (``known_errors.py``), as checkpointable dicts."""
    artifacts = incident.get("artifacts", {})
    text = "\n".join([incident["report"], *(t for n, t in artifacts.items() if is_log(n, t))])
    return [
        {"category": m.category, "strength": m.strength, "origin": m.origin, "text": m.text}
        for m in known_errors.matches(text)
    ]


async def hypothesise(runtime: DiagnosisRuntime, state: DiagnosisState) -> dict[str, Any]:
    found = state.get("known_errors", [])
    ratios = known_errors.evidence_ratios([known_errors.Match(**m) for m in found])
    priors = known_errors.combine(dict(state.get("priors", {})), ratios)
    notes: dict[str, dict[str, list[str]]] = {}
    for match in found:
        notes.setdefault(match["category"], {"for": [], "against": []})["for"].append(
            f"known error ({match['origin']}, {match['strength']}): {match['text']!r}"
        )
    for entry in state.get("retrieved", []):
        for category, count in entry["hypotheses"].items():
            total = sum(entry["hypotheses"].values())
            notes.setdefault(category, {"for": [], "against": []})["for"].append(
                f"guide {entry['id']} ({entry['signature'][:60]!r}): {count} of {total} past incidents"
            )
    update: dict[str, Any] = {}
    if runtime.agents is not None:
        incident = state["incident"]
        candidates = ", ".join(f"{c} ({p:.0%})" for c, p in list(priors.items())[:5])
        reply = await runtime.agents.ask(
            "hypothesise", HypothesesReply, report=incident["report"],
            workload=json.dumps(incident.get("workload", {})), signatures=state["facts"]["signatures"][:3],
            candidates=candidates, categories=", ".join(CATEGORIES),
        )  # fmt: skip
        update["model_calls"] = 1
        if reply is None:
            update["parse_failures"] = 1
        else:
            for rank, hypothesis in enumerate(reply.hypotheses):
                priors[hypothesis.category] = priors.get(hypothesis.category, 0.0) + LLM_WEIGHT / (rank + 1)
                note = notes.setdefault(hypothesis.category, {"for": [], "against": []})
                if hypothesis.evidence_for:
                    note["for"].append(f"model: {hypothesis.evidence_for}")
                if hypothesis.evidence_against:
                    note["against"].append(f"model: {hypothesis.evidence_against}")
    ranked = sorted(priors.items(), key=lambda item: (-item[1], item[0]))
    table = [c for c, p in ranked if p >= 0.02][:5]
    if len(table) < 2:
        table += [c for c, _ in ranked if c not in table][: 2 - len(table)]
    posteriors = judge.initial_posteriors({c: priors[c] for c in table}) if table else {judge.UNKNOWN: 1.0}
    hypotheses = [
        {"category": c, "posterior": posteriors[c], "evidence_for": notes.get(c, {}).get("for", [])[:3],
         "evidence_against": notes.get(c, {}).get("against", [])[:3]}
        for c in table
    ]  # fmt: skip
    return {**update, "hypotheses": hypotheses, "posteriors": posteriors}


def plan(runtime: DiagnosisRuntime, state: DiagnosisState) -> dict[str, Any]:
    if runtime.variant in ("no-tools", "retrieval-only"):
        return {"ready": [], "status": "not verified"}
    planned = list(state.get("plan", []))
    known = {step["id"] for step in planned}
    artifact_kinds = state["facts"]["artifact_kinds"]
    leading = [c for c, p in judge.ranked(state["posteriors"]) if p >= 0.05][:LEADING]
    for category in leading:
        templates = (runtime.kb.steps.get(category, []) if runtime.kb else []) or default_steps(category)
        for template in templates:
            for step in bind(template, artifact_kinds):
                if step["id"] not in known and len(planned) < runtime.limits.max_steps:
                    planned.append(step)
                    known.add(step["id"])
    done = {o["step"] for o in state.get("observations", [])}
    declined = {i for i, ok in state.get("approvals", {}).items() if not ok}
    ready = [
        s["id"] for s in planned
        if s["id"] not in done and s["id"] not in declined and all(d in done for d in s["depends_on"])
        and not (s["depends_on"] and any(d in declined for d in s["depends_on"]))
    ]  # fmt: skip
    if not ready:
        return {"plan": planned, "ready": [], "status": "no steps left"}
    by_step = {o["step"]: o for o in state.get("observations", [])}
    for index, step in enumerate(planned):
        if step["id"] in ready and step["check"] == "quarantine_clients":
            flagged = [c for d in step["depends_on"] for c in by_step[d]["details"].get("flagged", [])]
            planned[index] = {**step, "arguments": {**step["arguments"], "clients": flagged}}
    return {"plan": planned, "ready": ready}


def approve(state: DiagnosisState) -> dict[str, Any]:
    steps = {s["id"]: s for s in state["plan"]}
    approvals = dict(state.get("approvals", {}))
    asking = [steps[i] for i in state.get("ready", []) if needs_approval(steps[i]) and i not in approvals]
    if not asking:
        return {}
    decision = interrupt(
        {
            "kind": "approval",
            "steps": [
                {"id": s["id"], "check": s["check"], "arguments": s["arguments"],
                 "description": CHECKS[s["check"]].description}
                for s in asking
            ],
        }
    )  # fmt: skip
    for step in asking:
        approvals[step["id"]] = _approved(decision, step["id"])
    return {"approvals": approvals}


def dispatch(runtime: DiagnosisRuntime, state: DiagnosisState) -> list[Send] | str:
    runnable = _runnable(state)
    if not runnable:
        return "judge"
    if runtime.variant == "sequential":
        return [Send("verify_each", {"steps": runnable, "incident": state["incident"], "wave": state["iteration"]})]
    return [Send("verify", {"step": s, "incident": state["incident"], "wave": state["iteration"]}) for s in runnable]


async def verify(runtime: DiagnosisRuntime, payload: dict[str, Any]) -> dict[str, Any]:
    step, incident, wave = payload["step"], payload["incident"], payload["wave"]
    return {"observations": [await _observe(step, incident, wave, runtime.attachments_dir)]}


async def verify_each(runtime: DiagnosisRuntime, payload: dict[str, Any]) -> dict[str, Any]:
    incident, wave, folder = payload["incident"], payload["wave"], runtime.attachments_dir
    return {"observations": [await _observe(s, incident, wave, folder) for s in payload["steps"]]}


def judge_node(runtime: DiagnosisRuntime, state: DiagnosisState) -> dict[str, Any]:
    posteriors = dict(state["posteriors"])
    steps = {s["id"]: s for s in state.get("plan", [])}
    observations = state.get("observations", [])
    fresh = observations[state.get("judged", 0) :]
    effects = dict(state.get("effects", {}))
    evidence = {
        h["category"]: {"for": list(h["evidence_for"]), "against": list(h["evidence_against"])}
        for h in state["hypotheses"]
    }
    for observation in fresh:
        if observation.get("error"):
            continue
        found = judge.effects(steps[observation["step"]]["meaning"], observation["signals"])
        effects[observation["step"]] = found
        posteriors = judge.update(posteriors, found)
        for item in found:
            if item["category"] in evidence:
                helps = item["ratio"] > 1
                side = "for" if helps else "against"
                evidence[item["category"]][side].append(f"{observation['step']}: {observation['summary'][:160]}")
    iteration = state.get("iteration", 0) + (1 if fresh or state.get("ready") else 0)
    status = state.get("status") if state.get("status") in ("no steps left", "not verified") else None
    status = judge.verdict(posteriors) or status
    if status is None and iteration >= runtime.limits.max_iterations:
        status = "iteration budget spent"
    if status is None and len(observations) >= runtime.limits.max_steps:
        status = "step budget spent"
    hypotheses = [
        {**h, "posterior": posteriors.get(h["category"], 0.0), "evidence_for": evidence[h["category"]]["for"],
         "evidence_against": evidence[h["category"]]["against"]}
        for h in state["hypotheses"]
    ]  # fmt: skip
    update = {
        "posteriors": posteriors,
        "hypotheses": hypotheses,
        "judged": len(observations),
        "iteration": iteration,
        "effects": effects,
        "status": status or "running",
    }
    return update


async def report(runtime: DiagnosisRuntime, state: DiagnosisState) -> dict[str, Any]:
    return await _report(state, runtime)


def after_intake(state: DiagnosisState) -> str:
    return "clarify" if state.get("question") else "retrieve"


def after_plan(state: DiagnosisState) -> str:
    return "approve" if state.get("ready") else "judge"


def after_judge(state: DiagnosisState) -> str:
    return "plan" if state["status"] == "running" else "report"


def build_graph(runtime: DiagnosisRuntime, checkpointer: Any = None) -> Any:
    """The diagnosis graph over ``runtime``: each node below is a module-level function of (runtime, state)."""

    def bound(node: Any) -> Any:
        if inspect.iscoroutinefunction(node):

            async def run_async(state: Any) -> Any:
                return await node(runtime, state)

            return run_async

        def run(state: Any) -> Any:
            return node(runtime, state)

        return run

    graph = StateGraph(DiagnosisState)
    graph.add_node("intake", bound(intake))
    graph.add_node("clarify", clarify)
    graph.add_node("retrieve", bound(retrieve))
    graph.add_node("hypothesise", bound(hypothesise))
    graph.add_node("plan", bound(plan))
    graph.add_node("approve", approve)
    graph.add_node("verify", bound(verify))
    graph.add_node("verify_each", bound(verify_each))
    graph.add_node("judge", bound(judge_node))
    graph.add_node("report", bound(report))
    graph.add_edge(START, "intake")
    graph.add_conditional_edges("intake", after_intake, ["clarify", "retrieve"])
    graph.add_edge("clarify", "retrieve")
    graph.add_edge("retrieve", "hypothesise")
    graph.add_edge("hypothesise", "plan")
    graph.add_conditional_edges("plan", after_plan, ["approve", "judge"])
    graph.add_conditional_edges("approve", bound(dispatch), ["verify", "verify_each", "judge"])
    graph.add_edge("verify", "judge")
    graph.add_edge("verify_each", "judge")
    graph.add_conditional_edges("judge", after_judge, ["plan", "report"])
    graph.add_edge("report", END)
    return graph.compile(checkpointer=checkpointer)


def recursion_limit(limits: Limits) -> int:
    """Supersteps a run can take: intake, clarify, retrieve, hypothesise, then plan/approve/verify/judge per
    round, and report; with room to spare."""
    return 8 + 5 * (limits.max_iterations + 1) + 10


def _approved(decision: Any, step_id: str) -> bool:
    """A resume value read as approval of one step: True/False for all, a list of approved ids, or a mapping
    of id -> bool; anything else declines (nothing changes without a clear yes)."""
    if isinstance(decision, bool):
        return decision
    if isinstance(decision, str):
        return decision.strip().lower() in ("y", "yes", "approve", "approved", "ok")
    if isinstance(decision, list | tuple | set):
        return step_id in decision
    if isinstance(decision, dict):
        return decision.get(step_id) is True
    return False


def needs_approval(step: dict[str, Any]) -> bool:
    """A step changes state, so waits for a person's yes, when its check is declared so in ``checks.py`` or the
    step says so; neither a knowledge base nor a checkpoint can mark a state-changing check read-only."""
    check = CHECKS.get(step["check"])
    return check is None or not check.read_only or not step.get("read_only", False)


def _runnable(state: DiagnosisState) -> list[dict[str, Any]]:
    steps = {s["id"]: s for s in state.get("plan", [])}
    approvals = state.get("approvals", {})
    return [steps[i] for i in state.get("ready", []) if not needs_approval(steps[i]) or approvals.get(i) is True]


async def _observe(step: dict[str, Any], incident: dict[str, Any], wave: int, folder: str | None) -> dict[str, Any]:
    arguments = dict(step["arguments"])
    artifacts = incident.get("artifacts", {})
    started = time.time()
    result, seconds = await asyncio.to_thread(run_check, step["check"], arguments, artifacts, folder)
    ended = time.time()
    return {
        "step": step["id"], "check": step["check"], "arguments": arguments, "summary": result.summary,
        "signals": result.signals, "details": _jsonable(result.details), "tools": result.tools, "error": result.error,
        "seconds": seconds, "started": started, "ended": ended, "wave": wave, "read_only": step["read_only"],
    }  # fmt: skip


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def verification_seconds(observations: list[dict[str, Any]]) -> tuple[float, float]:
    """(wall seconds of verification: per wave, first start to last end; sum of the steps' own seconds)."""
    waves: dict[int, list[dict[str, Any]]] = {}
    for observation in observations:
        waves.setdefault(observation["wave"], []).append(observation)
    wall = sum(max(o["ended"] for o in w) - min(o["started"] for o in w) for w in waves.values())
    return wall, sum(o["seconds"] for o in observations)


async def _report(state: DiagnosisState, runtime: DiagnosisRuntime) -> dict[str, Any]:
    kb, agents = runtime.kb, runtime.agents
    ranking = judge.ranked(state["posteriors"])
    category, confidence = ranking[0] if ranking else (None, 0.0)
    observations = state.get("observations", [])
    evidence = [
        {"step": o["step"], "check": o["check"], "arguments": o["arguments"], "seconds": round(o["seconds"], 6),
         "summary": o["summary"], "tools": o["tools"], "error": o["error"],
         "effects": [e for e in state.get("effects", {}).get(o["step"], []) if e["category"] == category]}
        for o in observations
    ]  # fmt: skip
    component = (kb.components.get(category) if kb and category else None) or "unknown"
    mitigation = (
        kb.mitigations.get(category) if kb and category else None
    ) or "No mitigation on record for this cause."
    wall, summed = verification_seconds(observations)
    approvals = state.get("approvals", {})
    report: dict[str, Any] = {
        "id": state["incident"].get("id"),
        "category": category,
        "component": component,
        "confidence": round(confidence, 4),
        "status": state.get("status"),
        "top3": [c for c, _ in ranking[:3]],
        "hypotheses": state.get("hypotheses", []),
        "evidence": evidence,
        "mitigation": mitigation,
        "iterations": state.get("iteration", 0),
        "tool_calls": len(observations),
        "registry_tools": sorted({t for o in observations for t in o["tools"]}),
        "declined": sorted(i for i, ok in approvals.items() if not ok),
        "questions": len(state.get("answers", [])),
        "verification_seconds": wall,
        "verification_step_seconds": summed,
        "retrieved": state.get("retrieved", []),
    }
    update: dict[str, Any] = {}
    summary = None
    if agents is not None and category is not None:
        lines = [f"{e['check']}: {e['summary'][:150]}" for e in evidence if not e["error"]][:6]
        reply = await agents.ask(
            "report", ReportReply, report=state["incident"]["report"], category=category, component=component,
            confidence=f"{confidence:.2f}", evidence=lines,
        )  # fmt: skip
        update["model_calls"] = 1
        if reply is None:
            update["parse_failures"] = 1
        else:
            summary = reply.summary
    if summary is None:
        cited = "; ".join(e["summary"] for e in evidence if any(x["ratio"] > 1 for x in e["effects"]))[:400]
        summary = (
            f"Most likely {category} ({component}) at {confidence:.0%}" + (f": {cited}." if cited else ".")
            if category
            else "No cause could be singled out."
        )
    report["summary"] = summary
    report["parse_failures"] = state.get("parse_failures", 0) + update.get("parse_failures", 0)
    report["model_calls"] = state.get("model_calls", 0) + update.get("model_calls", 0)
    return {**update, "report": report}
