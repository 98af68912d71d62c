"""The chat behind ``thoughtgraph diagnose``: the user pastes a report (attachments come from ``--attach``),
answers the clarifying question if one is asked, approves or declines each step that changes state, reads
the report, and asks follow-ups. Every step shows what ran (tool, arguments, result, time). Input and output
are functions, so the same code runs in a terminal and in tests."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from thoughtgraph.agents.diagnosis.api import (
    DiagnosisSession,
    UnknownSession,
    describe_report,
    make_runtime,
    session_state,
    stream_diagnosis,
)
from thoughtgraph.agents.diagnosis.graph import Limits
from thoughtgraph.agents.diagnosis.sessions import open_checkpointer, thread_ids

Read = Callable[[str], str]
Write = Callable[[str], None]
QUIT = ("/quit", "/exit", "quit", "exit")


def read_attachments(pairs: list[str]) -> dict[str, str]:
    """``name=path`` pairs (or just ``path``: the file name is the name) read as text."""
    attachments = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep:
            name, path = Path(pair).name, pair
        file = Path(path).expanduser()
        if not file.is_file():
            raise FileNotFoundError(f"--attach {pair}: no file at {file}")
        attachments[name] = file.read_text(encoding="utf-8", errors="replace")
    return attachments


def show_event(event: dict[str, Any], write: Write) -> None:
    kind = event["kind"]
    if kind == "hypothesise":
        table = ", ".join(f"{h['category']} {h['posterior']:.0%}" for h in event.get("hypotheses", []))
        write(f"Hypotheses: {table}")
    elif kind == "retrieve" and event.get("retrieved"):
        write("Matched guides: " + ", ".join(f"{e['id']} ({e['score']:.1f})" for e in event["retrieved"]))
    elif kind == "step":
        arguments = json.dumps(event["arguments"], default=str)
        tools = f" [{', '.join(event['tools'])}]" if event["tools"] else ""
        write(f"  ran {event['check']}({arguments}){tools} in {event['seconds'] * 1000:.0f} ms: {event['summary']}")
    elif kind == "judge":
        ranked = sorted(((c, p) for c, p in event.get("posteriors", {}).items()), key=lambda x: -x[1])[:3]
        write(f"Judge: {', '.join(f'{c} {p:.0%}' for c, p in ranked)} -> {event.get('status')}")
    elif kind == "report":
        write("")
        write(describe_report(event["report"]))


def _approver(read: Read, write: Write) -> Callable[[list[dict[str, Any]]], dict[str, bool]]:
    def approve(steps: list[dict[str, Any]]) -> dict[str, bool]:
        decisions = {}
        for step in steps:
            write(f"Step {step['id']} CHANGES STATE: {step['description']}")
            write(f"  arguments: {json.dumps(step['arguments'], default=str)}")
            reply = read("Approve? [y/N] ").strip().lower()
            decisions[step["id"]] = reply in ("y", "yes")
            write("  approved" if decisions[step["id"]] else "  declined: the step will not run")
        return decisions

    return approve


def _answerer(read: Read, write: Write) -> Callable[[str], str]:
    def answer(question: str) -> str:
        write(f"Question: {question}")
        return read("> ")

    return answer


def read_report(read: Read) -> str:
    lines = []
    while True:
        line = read("" if lines else "Describe the failure (paste logs too); finish with an empty line:\n")
        if not line.strip():
            if lines:
                return "\n".join(lines)
            continue
        lines.append(line)


async def chat(
    *,
    read: Read,
    write: Write,
    session: str | None = None,
    db: str | None = None,
    backend: str | None = None,
    kb: str | None = None,
    attachments: dict[str, str] | None = None,
    variant: str = "full",
    limits: Limits | None = None,
    new_session_id: str | None = None,
    embeddings: str | None = None,
    attachments_dir: str | None = None,
) -> str:
    """One chat; returns the session id. File paths inside attachments resolve under ``attachments_dir``."""
    async with open_checkpointer(db) as saver:
        if session is not None:
            if session not in await thread_ids(saver):
                raise UnknownSession(f"no diagnosis session {session!r} in {db or 'the default store'}")
            state = await session_state(saver, session)
            write(f"Resuming session {session}.")
            for observation in state.values.get("observations", []):
                write(f"  (earlier) {observation['check']}: {observation['summary']}")
            report, session_id = "", session
        else:
            report = read_report(read)
            session_id = new_session_id or uuid.uuid4().hex[:12]
            write(f"Session {session_id} (resume with --session {session_id}).")
        async for event in stream_diagnosis(
            report, artifacts=attachments, backend=backend, kb=kb, variant=variant, limits=limits,
            embeddings=embeddings, attachments_dir=attachments_dir,
            approve=_approver(read, write), answer=_answerer(read, write), session=session_id, checkpointer=saver,
        ):  # fmt: skip
            show_event(event, write)
        settings = (await session_state(saver, session_id)).values.get("settings", {})
        current = DiagnosisSession(session_id, make_runtime(settings), saver)
        for earlier in (await current.state()).values.get("followups", []):
            write(f"(earlier) Q: {earlier['question']}\n(earlier) A: {earlier['answer']}")
        while True:
            try:
                question = read("Follow-up question (empty line to leave): ").strip()
            except EOFError:
                break
            if not question or question.lower() in QUIT:
                break
            write(await current.add_followup(question))
    return session_id


async def list_sessions(db: str | None, write: Write) -> int:
    async with open_checkpointer(db) as saver:
        ids = await thread_ids(saver)
        if not ids:
            write("no diagnosis sessions")
        for thread in ids:
            state = await session_state(saver, thread)
            write(f"{thread}  {session_status(state)}  {state.values.get('incident', {}).get('report', '')[:60]!r}")
        return len(ids)


def session_status(state: Any) -> str:
    if state.interrupts:
        return f"waiting for {state.interrupts[0].value['kind']}"
    report = state.values.get("report")
    if report:
        return f"done: {report['category']} ({report['confidence']:.0%})"
    return f"stopped before {', '.join(state.next) or 'start'}"


async def delete_session(db: str | None, session: str) -> None:
    async with open_checkpointer(db) as saver:
        if session not in await thread_ids(saver):
            raise UnknownSession(f"no diagnosis session {session!r}")
        await saver.adelete_thread(session)
