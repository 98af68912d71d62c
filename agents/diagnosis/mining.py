"""Mining with models: the deterministic mining of ``knowledge.mine``, plus an LLM that titles and summarises
each entry (constrained JSON; a reply that does not parse is counted and the entry keeps its signature) and
an embedder whose vectors are stored with the knowledge base."""

from __future__ import annotations

import asyncio
from typing import Any

from thoughtgraph.agents.diagnosis.embeddings import Embedder
from thoughtgraph.agents.diagnosis.incidents import Incident
from thoughtgraph.agents.diagnosis.knowledge import GuideEntry, KnowledgeBase, mine
from thoughtgraph.agents.diagnosis.llm import DiagnosisAgents, SummaryReply
from thoughtgraph.agents.runtime import Budget
from thoughtgraph.backends import Backend


def mine_with_model(
    incidents: list[Incident], backend: Backend | None, embedder: Embedder | None = None, grouping: str = "signature"
) -> KnowledgeBase:
    kb = mine(incidents, grouping)
    if embedder is not None:
        kb.attach(embedder)
    if backend is None:
        return kb
    agents = DiagnosisAgents(backend, Budget(max_calls=len(kb.entries) + 1))
    reports = {i.id: i.report for i in incidents}

    async def write_all() -> list[tuple[str, str] | None]:
        return list(await asyncio.gather(*(_summary(agents, entry, reports) for entry in kb.entries)))

    for entry, written in zip(kb.entries, asyncio.run(write_all()), strict=True):
        if written is None:
            kb.summaries_failed += 1
        else:
            entry.title, entry.summary = written
    return kb


async def _summary(agents: DiagnosisAgents, entry: GuideEntry, reports: dict[str, str]) -> tuple[str, str] | None:
    reply: Any = await agents.ask(
        "summarise", SummaryReply, signature=entry.signature, hypotheses=entry.hypotheses,
        example=reports.get(entry.sources[0], ""),
    )  # fmt: skip
    return None if reply is None else (reply.title[:120], reply.summary[:400])
