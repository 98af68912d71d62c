"""The thought graph every method builds: steps as nodes, forward and rollback edges, experiences.

One type serves all methods. A node holds one reasoning step and what is known about it (score,
confidence, novelty, whether it ends in an answer). Forward edges make trees; rollback edges (Thought
Rollback) point from a node back to an earlier step and may close cycles. Experiences (a chain plus
the feedback on it) are first-class: BoT's memory and TR's inherited analyses share this type.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

EdgeKind = Literal["forward", "rollback"]
ROOT = 0


@dataclass
class ThoughtNode:
    id: int
    text: str
    parent: int | None
    depth: int
    score: float | None = None
    confidence: float | None = None
    novelty: float | None = None
    answer: str | None = None
    """The final answer this step states, when it ends a solution."""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def is_final(self) -> bool:
        return self.answer is not None


@dataclass
class Edge:
    source: int
    target: int
    kind: EdgeKind = "forward"
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Experience:
    """A chain of steps and the feedback on it (error analysis, advice, the bad step indices)."""

    steps: list[str]
    feedback: str
    bad_steps: list[int] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        chain = "\n".join(f"Step {i + 1}: {step}" for i, step in enumerate(self.steps))
        return f"{chain}\nFeedback: {self.feedback}"


class ThoughtGraph:
    def __init__(self, question: str) -> None:
        self.question = question
        self.nodes: dict[int, ThoughtNode] = {ROOT: ThoughtNode(ROOT, question, None, 0)}
        self.edges: list[Edge] = []
        self.experiences: list[Experience] = []
        self.chosen: list[int] = []
        """Node ids of the chain the method chose as its answer, root excluded."""
        self._children: dict[int, list[int]] = {ROOT: []}

    # -- building ---------------------------------------------------------------------------------------

    def add_thought(self, parent: int, text: str, **fields: Any) -> ThoughtNode:
        if parent not in self.nodes:
            raise KeyError(f"no node {parent} in the thought graph")
        node = ThoughtNode(len(self.nodes), text, parent, self.nodes[parent].depth + 1, **fields)
        self.nodes[node.id] = node
        self.edges.append(Edge(parent, node.id))
        self._children[parent].append(node.id)
        self._children[node.id] = []
        return node

    def add_rollback(self, source: int, target: int, **metadata: Any) -> Edge:
        if source not in self.nodes or target not in self.nodes:
            raise KeyError(f"rollback {source} -> {target} names a node the graph does not have")
        edge = Edge(source, target, "rollback", metadata)
        self.edges.append(edge)
        return edge

    # -- reading ----------------------------------------------------------------------------------------

    def path(self, node_id: int) -> list[int]:
        """Node ids from the first step to ``node_id`` along forward edges (the root excluded)."""
        ids = []
        while node_id != ROOT:
            ids.append(node_id)
            parent = self.nodes[node_id].parent
            assert parent is not None
            node_id = parent
        return ids[::-1]

    def position(self, node_id: int, scope: str | None = None) -> tuple[int, ...]:
        """Where a node sits, independent of the order concurrent branches finished in: for each step on
        its path, its index among its parent's children (only those with the same ``metadata[scope]``, for
        methods whose concurrent trees share the question as parent). Seeds derived from it reproduce on
        any backend, unlike node ids, which follow completion order."""
        indices = []
        for node in self.path(node_id):
            this = self.nodes[node]
            siblings = self.children(this.parent)  # type: ignore[arg-type]
            if scope is not None:
                siblings = [i for i in siblings if self.nodes[i].metadata.get(scope) == this.metadata.get(scope)]
            indices.append(siblings.index(node))
        return tuple(indices)

    def children(self, node_id: int) -> list[int]:
        """The node's children, in the order they were added."""
        return self._children[node_id]

    def steps(self, node_id: int) -> list[str]:
        return [self.nodes[i].text for i in self.path(node_id)]

    def rollbacks(self) -> list[Edge]:
        return [e for e in self.edges if e.kind == "rollback"]

    def finals(self) -> list[ThoughtNode]:
        return [n for n in self.nodes.values() if n.is_final]

    def __len__(self) -> int:
        return len(self.nodes) - 1  # thoughts, the question excluded

    # -- serialising ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "nodes": [asdict(n) for n in self.nodes.values()],
            "edges": [asdict(e) for e in self.edges],
            "experiences": [asdict(x) for x in self.experiences],
            "chosen": self.chosen,
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThoughtGraph:
        graph = cls(data["question"])
        graph.nodes = {n["id"]: ThoughtNode(**n) for n in data["nodes"]}
        graph._children = {node_id: [] for node_id in graph.nodes}
        for node in graph.nodes.values():
            if node.parent is not None:
                graph._children[node.parent].append(node.id)
        graph.edges = [Edge(**e) for e in data["edges"]]
        graph.experiences = [Experience(**x) for x in data["experiences"]]
        graph.chosen = list(data["chosen"])
        return graph

    def to_mermaid(self) -> str:
        lines = ["graph TD"]
        for node in self.nodes.values():
            label = (node.text if node.id else "Question")[:60].replace('"', "'").replace("\n", " ")
            score = f" ({node.score:.2f})" if node.score is not None else ""
            lines.append(f'    n{node.id}["{label}{score}"]')
        for edge in self.edges:
            arrow = "-.->|rollback|" if edge.kind == "rollback" else "-->"
            lines.append(f"    n{edge.source} {arrow} n{edge.target}")
        if self.chosen:
            lines.append("    classDef chosen stroke:#1f5fbf,stroke-width:3px")
            lines.append(f"    class {','.join(f'n{i}' for i in self.chosen)} chosen")
        return "\n".join(lines)

    def to_html(self, title: str = "thoughtgraph trace") -> str:
        from thoughtgraph.reasoning.graph_html import render_html

        return render_html(self, title)
