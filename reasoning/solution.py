"""What every method returns."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from thoughtgraph.reasoning.graph import ThoughtGraph


@dataclass
class Solution:
    answer: str | None
    """The method's final answer; None when no answer could be extracted at all."""
    reasoning: str
    method: str
    candidates: Counter[str] = field(default_factory=Counter)
    """Every candidate answer the method produced, with its votes."""
    usage: dict[str, Any] = field(default_factory=dict)
    """The method's usage ledger (calls, tokens, seconds, events) as a dict."""
    prompt_versions: dict[str, int | str] = field(default_factory=dict)
    stopped_by: str | None = None
    """Why the run ended early (a budget), or None when it finished normally."""
    graph: ThoughtGraph | None = None

    def why_no_answer(self) -> str | None:
        """Why ``answer`` is None (a budget, or chains that stated none), in a sentence; None when there is one."""
        if self.answer is not None:
            return None
        if self.stopped_by:
            return self.stopped_by
        failures = self.usage.get("events", {}).get("parse_failure", 0)
        replies = "reply" if failures == 1 else "replies"
        return f"no chain stated an answer that could be read ({failures} unreadable {replies})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "reasoning": self.reasoning,
            "method": self.method,
            "candidates": dict(self.candidates),
            "usage": self.usage,
            "prompt_versions": self.prompt_versions,
            "stopped_by": self.stopped_by,
            "graph": self.graph.to_dict() if self.graph else None,
        }
