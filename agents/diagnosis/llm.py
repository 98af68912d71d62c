"""The diagnosis agents that call a model: intake, hypothesise, report, follow-up, and mining's summariser.

Every agent whose output a program reads asks for JSON under a JSON-schema constraint (on backends that
support one; free text otherwise) and parses it with pydantic. A reply that does not parse, or a spent
budget, is a counted parse failure and the caller falls back to what it has without the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError

from thoughtgraph.agents.diagnosis.incidents import CATEGORIES
from thoughtgraph.agents.runtime import Agent, Budget, BudgetExceeded
from thoughtgraph.backends import Backend, BackendError, Constraint, UsageLedger

M = TypeVar("M", bound=BaseModel)


Symptom = Annotated[str, Field(max_length=40)]
Evidence = Annotated[str, Field(max_length=60)]


class IntakeReply(BaseModel):
    workload_kind: Literal["training", "fine-tuning", "inference", "federated", "unknown"]
    symptoms: list[Symptom] = Field(default_factory=list, max_length=3)


class Hypothesis(BaseModel):
    category: Literal[CATEGORIES]  # type: ignore[valid-type]
    evidence_for: Evidence = ""
    evidence_against: Evidence = ""


class HypothesesReply(BaseModel):
    hypotheses: list[Hypothesis] = Field(min_length=1, max_length=4)


class ReportReply(BaseModel):
    summary: str = Field(min_length=1, max_length=300)


class SummaryReply(BaseModel):
    title: str = Field(min_length=1, max_length=80)
    summary: str = Field(min_length=1, max_length=200)


MAX_TOKENS = {"intake": 120, "hypothesise": 240, "report": 120, "summarise": 100, "followup": 256}
"""Token limits per agent. The schemas bound every string and list, so a small model that repeats itself is
stopped by the grammar (llama.cpp repeats a grammar rule per allowed character, so the bounds stay in the
hundreds: at 1,200 its grammar compiler refuses); but a token can be one character (digits are), so a reply
can still hit the limit mid-JSON, and ``close_truncated_json`` then keeps what was complete."""


def close_truncated_json(text: str) -> list[str]:
    """Candidate completions of JSON cut off mid-way, most complete first: the text with its open string and
    brackets closed, then the text cut back to each earlier comma (dropping a half-written member) and closed."""
    candidates = []
    cuts = [len(text), *[i for i in range(len(text) - 1, 0, -1) if text[i] == ","][:8]]
    for cut in cuts:
        prefix, stack, in_string, escaped = text[:cut], [], False, False
        for char in prefix:
            if in_string:
                if escaped:
                    escaped = False
                elif char == "\\":
                    escaped = True
                elif char == '"':
                    in_string = False
            elif char == '"':
                in_string = True
            elif char in "{[":
                stack.append("}" if char == "{" else "]")
            elif char in "}]" and stack:
                stack.pop()
        closed = prefix + ('"' if in_string else "")
        candidates.append(closed.rstrip().rstrip(",") + "".join(reversed(stack)))
    return candidates


def _parser(model: type[M]):
    def parse(text: str) -> M | None:
        start = text.find("{")
        if start < 0:
            return None
        end = text.rfind("}")
        whole = [text[start : end + 1]] if end > start else []
        for candidate in [*whole, *close_truncated_json(text[start:])]:
            try:
                return model.model_validate(json.loads(candidate))
            except (json.JSONDecodeError, ValidationError):
                continue
        return None

    return parse


@dataclass
class DiagnosisAgents:
    backend: Backend
    budget: Budget

    def _agent(self, role: str, model: type[BaseModel] | None) -> Agent:
        return Agent(
            role=f"diagnosis/{role}",
            backend=self.backend,
            budget=self.budget,
            parse=_parser(model) if model else (lambda text: text),
            constraint=Constraint.schema(model.model_json_schema()) if model else None,
            max_tokens=MAX_TOKENS[role],
        )

    async def ask(self, role: str, model: type[M], **values: Any) -> M | None:
        """The parsed reply, or None (a parse failure, a refused budget, or a backend error)."""
        try:
            reply = await self._run(self._agent(role, model), values)
        except (BudgetExceeded, BackendError):
            return None
        return reply.parsed[0] if reply.parsed else None

    async def _run(self, agent: Agent, values: dict[str, Any]) -> Any:
        """One call, recorded in the budget's ledger (a ledger per call: concurrent nodes each open their own,
        since one ledger object cannot be entered from two tasks at once)."""
        with UsageLedger() as spent:
            try:
                return await agent.run(**values)
            finally:
                self.budget.ledger.merge(spent)

    async def answer(self, **values: Any) -> str:
        """A free-text follow-up answer ('' when the budget or the backend refuses)."""
        try:
            reply = await self._run(self._agent("followup", None), values)
        except (BudgetExceeded, BackendError) as error:
            return f"(no answer: {error})"
        return reply.texts[0] if reply.texts else ""
