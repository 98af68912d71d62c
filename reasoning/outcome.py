"""What a method hands back to the API before it becomes a Solution."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from thoughtgraph.reasoning.graph import ThoughtGraph
from thoughtgraph.reasoning.steps import majority_vote


@dataclass
class Outcome:
    answer: str | None
    reasoning: str
    candidates: Counter[str] = field(default_factory=Counter)


def outcome_from_graph(graph: ThoughtGraph) -> Outcome:
    """The best the graph holds so far: a majority vote over the answers of its final steps.

    Used when a budget stops a run early, and by methods whose answer is such a vote."""
    finals = graph.finals()
    answer, votes = majority_vote([n.answer or "" for n in finals])
    chosen = next((n for n in finals if n.answer == answer), None)
    if chosen is not None:
        graph.chosen = graph.path(chosen.id)
    reasoning = "\n".join(graph.steps(chosen.id)) if chosen else ""
    return Outcome(answer, reasoning, votes)
