"""What a method run carries: the question, the backend, the budget, the seed and the thought graph."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from thoughtgraph.agents.runtime import Budget
from thoughtgraph.backends import Backend
from thoughtgraph.reasoning.graph import ThoughtGraph, ThoughtNode

ThoughtListener = Callable[[ThoughtNode], None]


@dataclass
class RunContext:
    question: str
    backend: Backend
    budget: Budget
    seed: int = 0
    graph: ThoughtGraph = field(init=False)
    on_thought: ThoughtListener | None = None
    """Called with every thought as it is added (streaming)."""
    prompt_versions: dict[str, int | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.graph = ThoughtGraph(self.question)

    def add_thought(self, parent: int, text: str, **fields: object) -> ThoughtNode:
        node = self.graph.add_thought(parent, text, **fields)
        if self.on_thought is not None:
            self.on_thought(node)
        return node

    def used(self, *agents: object) -> None:
        """Record the prompt versions of the agents a method ran."""
        for agent in agents:
            prompt = agent.prompt  # type: ignore[attr-defined]
            self.prompt_versions[prompt.name] = prompt.version
