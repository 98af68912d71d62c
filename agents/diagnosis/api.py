"""The Python entry points: ``diagnose(report, artifacts=..., backend=...) -> Diagnosis`` and the streaming
``stream_diagnosis``; both run the diagnosis graph in a session (a LangGraph thread)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from thoughtgraph.agents.diagnosis.embeddings import LlamaCppEmbedder
from thoughtgraph.agents.diagnosis.graph import DiagnosisRuntime, Limits, build_graph, recursion_limit
from thoughtgraph.agents.diagnosis.incidents import HISTORY, Incident, load_incidents
from thoughtgraph.agents.diagnosis.knowledge import KnowledgeBase, mine
from thoughtgraph.agents.diagnosis.llm import DiagnosisAgents
from thoughtgraph.agents.diagnosis.sessions import open_checkpointer
from thoughtgraph.agents.runtime import Budget
from thoughtgraph.backends import Backend, shared_backend

Approver = bool | Callable[[list[dict[str, Any]]], Any]
Answerer = str | Callable[[str], str] | None


NO_ANSWER = ""
"""An answer policy for runs nobody attends (evaluation, batch jobs): a clarifying question is recorded and
answered with nothing, and the diagnosis goes on without the fact."""


class UnknownSession(KeyError):
    """No session with that id in the store."""

    def __str__(self) -> str:
        return str(self.args[0])


class NeedsInput(RuntimeError):
    """The run asked a question or an approval that no policy answers (``diagnose(answer=..., approve=...)``)."""


@dataclass
class Diagnosis:
    session: str
    report: dict[str, Any]
    actions: list[dict[str, Any]] = field(default_factory=list)
    """Side-effecting steps that ran after approval."""

    category = property(lambda self: self.report["category"])
    component = property(lambda self: self.report["component"])
    confidence = property(lambda self: self.report["confidence"])
    mitigation = property(lambda self: self.report["mitigation"])
    evidence = property(lambda self: self.report["evidence"])
    summary = property(lambda self: self.report["summary"])
    status = property(lambda self: self.report["status"])

    def describe(self) -> str:
        return describe_report(self.report)


def describe_report(report: dict[str, Any]) -> str:
    lines = [
        f"Root cause: {report['category']} (component: {report['component']}), confidence {report['confidence']:.0%}"
        f" [{report['status']}]",
        f"Summary: {report['summary']}",
        "Evidence:",
    ]
    for item in report["evidence"]:
        tools = f" via {', '.join(item['tools'])}" if item["tools"] else ""
        lines.append(f"  - [{item['step']}{tools}, {item['seconds'] * 1000:.0f} ms] {item['summary'][:200]}")
    if not report["evidence"]:
        lines.append("  - (no verification step ran)")
    lines.append(f"Mitigation: {report['mitigation']}")
    lines.append(
        f"Steps run: {report['tool_calls']} in {report['iterations']} round(s), verification "
        f"{report['verification_seconds'] * 1000:.0f} ms"
    )
    return "\n".join(lines)


@lru_cache(maxsize=1)
def default_knowledge_base() -> KnowledgeBase:
    """Mined from the shipped history (never from the held-out split)."""
    incidents, problems = load_incidents(HISTORY)
    if problems:
        raise ValueError(f"the shipped history has malformed lines: {problems[0]}")
    return mine(incidents)


def _knowledge_base(kb: KnowledgeBase | str | Path | None) -> KnowledgeBase:
    if isinstance(kb, KnowledgeBase):
        return kb
    return KnowledgeBase.load(kb) if kb else default_knowledge_base()


def _backend(backend: Backend | str | None) -> Backend | None:
    if backend is None or isinstance(backend, Backend):
        return backend
    return shared_backend(backend)


_EMBEDDED: dict[tuple[int, str], KnowledgeBase] = {}


def _with_embeddings(knowledge: KnowledgeBase, spec: str) -> KnowledgeBase:
    """A copy of the knowledge base that retrieves with the embedder too (embedded once per base and spec;
    the shared base itself stays lexical)."""
    key = (id(knowledge), spec)
    if key not in _EMBEDDED:
        embedded = dataclasses.replace(knowledge)
        embedded.attach(_embedder(spec))
        _EMBEDDED[key] = embedded
    return _EMBEDDED[key]


@lru_cache(maxsize=2)
def _embedder(spec: str) -> LlamaCppEmbedder:
    return LlamaCppEmbedder(spec)


def settings_for(
    backend: Backend | str | None, kb: Any, variant: str, limits: Limits, embeddings: str | None = None
) -> dict[str, Any]:
    spec = backend if isinstance(backend, str) else getattr(backend, "spec", None)
    return {
        "backend": spec,
        "embeddings": embeddings,
        "kb": None if kb is None or isinstance(kb, KnowledgeBase) else str(kb),
        "variant": variant,
        "limits": asdict(limits),
    }


def make_runtime(
    settings: dict[str, Any], *, backend: Backend | None = None, kb: Any = None, attachments_dir: str | None = None
) -> DiagnosisRuntime:
    model = backend or _backend(settings.get("backend"))
    agents = DiagnosisAgents(model, Budget(max_calls=20, max_seconds=600)) if model is not None else None
    knowledge = _knowledge_base(kb if kb is not None else settings.get("kb"))
    if settings.get("embeddings"):
        knowledge = _with_embeddings(knowledge, settings["embeddings"])
    return DiagnosisRuntime(
        kb=knowledge,
        agents=agents,
        variant=settings.get("variant", "full"),
        limits=Limits(**settings.get("limits", {})),
        attachments_dir=attachments_dir,
    )


def events_of(chunk: dict[str, Any]) -> list[dict[str, Any]]:
    """Stream events from one LangGraph ``updates`` chunk."""
    events: list[dict[str, Any]] = []
    for node, update in chunk.items():
        if node == "__interrupt__":
            events.extend({**item.value} for item in update)
        elif update is None:
            continue
        elif node in ("verify", "verify_each"):
            events.extend({"kind": "step", **observation} for observation in update.get("observations", []))
        elif node == "report":
            events.append({"kind": "report", "report": update["report"]})
        else:
            events.append({"kind": node, **{k: v for k, v in update.items() if k not in ("incident", "settings")}})
    return events


class DiagnosisSession:
    """One thread of the diagnosis graph in a checkpointer."""

    def __init__(self, session_id: str, runtime: DiagnosisRuntime, checkpointer: Any) -> None:
        self.id = session_id
        self.runtime = runtime
        self.graph = build_graph(runtime, checkpointer)
        self.config = {"configurable": {"thread_id": session_id}, "recursion_limit": recursion_limit(runtime.limits)}

    async def state(self) -> Any:
        return await self.graph.aget_state(self.config)

    async def run(self, inputs: Any) -> AsyncIterator[dict[str, Any]]:
        async for chunk in self.graph.astream(inputs, self.config, stream_mode="updates"):
            for event in events_of(chunk):
                yield event

    async def add_followup(self, question: str) -> str:
        snapshot = await self.state()
        report = snapshot.values.get("report")
        if report is None:
            raise RuntimeError("follow-up questions come after the report")
        if self.runtime.agents is None:
            answer = "(no model configured: follow-up questions need a backend)"
        else:
            answer = await self.runtime.agents.answer(diagnosis=describe_report(report), question=question)
        followups = [*snapshot.values.get("followups", []), {"question": question, "answer": answer}]
        await self.graph.aupdate_state(self.config, {"followups": followups}, as_node="report")
        return answer


async def session_state(checkpointer: Any, session_id: str) -> Any:
    """A session's checkpointed state (values, pending interrupts, next nodes), read without loading a model
    or a knowledge base."""
    return await DiagnosisSession(session_id, DiagnosisRuntime(kb=None, agents=None), checkpointer).state()


def incident_input(
    report: str, workload: dict[str, Any] | None, artifacts: dict[str, str] | None, incident_id: str | None
) -> dict[str, Any]:
    if not report.strip() and not artifacts:
        raise ValueError("empty report: describe the failure (what you saw, error lines) or attach a log")
    incident = Incident(
        id=incident_id or "user-report", report=report, workload=workload or {}, artifacts=artifacts or {}
    )
    return incident.model_dump(include={"id", "report", "workload", "artifacts"})


def _resume_value(pending: dict[str, Any], approve: Approver, answer: Answerer) -> Any:
    if pending["kind"] == "question":
        if answer is None:
            raise NeedsInput(f"the diagnosis asks: {pending['question']} (pass answer=...)")
        return answer(pending["question"]) if callable(answer) else answer
    return approve(pending["steps"]) if callable(approve) else bool(approve)


async def stream_diagnosis(
    report: str = "",
    *,
    workload: dict[str, Any] | None = None,
    artifacts: dict[str, str] | None = None,
    incident_id: str | None = None,
    backend: Backend | str | None = None,
    kb: KnowledgeBase | str | Path | None = None,
    variant: str = "full",
    limits: Limits | None = None,
    embeddings: str | None = None,
    approve: Approver = False,
    answer: Answerer = None,
    session: str | None = None,
    db: str | Path | None = None,
    checkpointer: Any = None,
    attachments_dir: str | Path | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Run (or, with ``session``, resume) a diagnosis and yield its events as they happen: ``intake``,
    ``retrieve``, ``hypothesise``, ``plan``, ``step`` (one per verification step, with its arguments, result
    and timing), ``judge``, ``question``/``approval`` (answered by ``answer``/``approve``), ``report``.
    Side-effecting steps run only when ``approve`` says yes (default: declined). ``embeddings``: a
    ``llamacpp:MODEL`` spec whose vectors join BM25 in retrieval. File paths inside artifacts (tensor files
    an FL or model check reads) resolve under ``attachments_dir`` (default: the working directory) and may not
    leave it."""
    async with AsyncExitStack() as stack:
        if checkpointer is None:
            checkpointer = await stack.enter_async_context(open_checkpointer(db)) if db is not None else InMemorySaver()
        session_id = session or uuid.uuid4().hex[:12]
        limits = limits or Limits()
        snapshot = await session_state(checkpointer, session_id)
        # a resumed session runs with the settings it was started with
        settings = snapshot.values.get("settings") or settings_for(backend, kb, variant, limits, embeddings)
        folder = str(attachments_dir) if attachments_dir is not None else None
        runtime = make_runtime(settings, backend=_backend(backend), kb=kb, attachments_dir=folder)
        current = DiagnosisSession(session_id, runtime, checkpointer)
        if snapshot.values:
            inputs: Any = None
            pending = dict(snapshot.interrupts[0].value) if snapshot.interrupts else None
            if pending is not None:
                yield pending
                inputs = Command(resume=_resume_value(pending, approve, answer))
            elif snapshot.values.get("report"):
                yield {"kind": "report", "report": snapshot.values["report"]}
                return
        elif session is not None and not report.strip() and not artifacts:
            raise UnknownSession(f"no diagnosis session {session!r}")
        else:
            inputs = {
                "incident": incident_input(report, workload, artifacts, incident_id),
                "settings": settings,
            }
        while True:
            pending = None
            async for event in current.run(inputs):
                if event["kind"] in ("question", "approval"):
                    pending = event
                yield event
            if pending is None:
                return
            inputs = Command(resume=_resume_value(pending, approve, answer))


async def diagnose_async(report: str = "", **options: Any) -> Diagnosis:
    """Run a diagnosis to its report (see :func:`stream_diagnosis` for the options)."""
    final: dict[str, Any] | None = None
    session = options.get("session")
    actions: list[dict[str, Any]] = []
    async for event in stream_diagnosis(report, **options):
        if event["kind"] == "report":
            final = event["report"]
        if event["kind"] == "step" and not event["read_only"] and event["error"] is None:
            actions.append({"step": event["step"], "check": event["check"], "arguments": event["arguments"]})
    if final is None:
        raise RuntimeError("the diagnosis ended without a report")
    return Diagnosis(session or final.get("session", ""), final, actions)


def diagnose(report: str = "", **options: Any) -> Diagnosis:
    """Blocking :func:`diagnose_async` (works inside a running event loop too, on a worker thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(diagnose_async(report, **options))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="diagnose") as worker:
        return worker.submit(asyncio.run, diagnose_async(report, **options)).result()
