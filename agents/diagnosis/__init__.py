"""TSGuard-style diagnosis of broken AI jobs: an incident corpus, knowledge-base mining, a LangGraph graph of
agents that verifies hypotheses with tools, chat sessions, and evaluation
(``python -m thoughtgraph.evals diagnose``)."""

from thoughtgraph.agents.diagnosis.api import (
    Diagnosis,
    NeedsInput,
    UnknownSession,
    diagnose,
    diagnose_async,
    stream_diagnosis,
)
from thoughtgraph.agents.diagnosis.incidents import CATEGORIES, Incident, load_incidents
from thoughtgraph.agents.diagnosis.knowledge import KnowledgeBase, mine

__all__ = [
    "CATEGORIES",
    "Diagnosis",
    "Incident",
    "KnowledgeBase",
    "NeedsInput",
    "UnknownSession",
    "diagnose",
    "diagnose_async",
    "load_incidents",
    "mine",
    "stream_diagnosis",
]
