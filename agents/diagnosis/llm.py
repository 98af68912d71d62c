"""The diagnosis agents that call a model: intake, hypothesise, report, follow-up, and mining's summariser.

Every agent whose output a program reads asks for JSON under a JSON-schema constraint (on backends that
support one; free text otherwise) and parses it with pydantic. A reply that does not parse, or a spent
budget, is a counted parse failure and the caller falls back to what it has without the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError

from agents.diagnosis.incidents import CATEGORIES
from agents.runtime import Agent, Budget, BudgetExceeded
from backends import Backend, BackendError, Constraint, UsageLedger

M = TypeVar("M", bound=BaseModel)


class IntakeReply(BaseModel):
    workload_kind: Literal["training", "fine-tuning", "inference", "federated", "unknown"]
    symptoms: list[str] = Field(default_factory=list, max_length=4)


class Hypothesis(BaseModel):
    category: Literal[CATEGORIES]  # type: ignore[valid-type]
    evidence_for: str = Field("", max_length=300)
    evidence_against: str = Field("", max_length=300)


class HypothesesReply(BaseModel):
    hypotheses: list[Hypothesis] = Field(min_length=1, max_length=5)


class ReportReply(BaseModel):
    summary: str = Field(min_length=1, max_length=1200)


class SummaryReply(BaseModel):
    title: str = Field(min_length=1, max_length=120)
    summary: str = Field(min_length=1, max_length=400)


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema without string length bounds: llama.cpp's grammar for a bounded string
    repeats a rule per character and refuses long bounds; lengths are checked after parsing instead."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in ("maxLength", "minLength")}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return strip(model.model_json_schema())


def _parser(model: type[M]):
    def parse(text: str) -> M | None:
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start:
            return None
        try:
            return model.model_validate(json.loads(text[start : end + 1]))
        except (json.JSONDecodeError, ValidationError):
            return None

    return parse


@dataclass
class DiagnosisAgents:
    backend: Backend
    budget: Budget
    max_tokens: int = 200

    def _agent(self, role: str, model: type[BaseModel] | None, max_tokens: int | None = None) -> Agent:
        return Agent(
            role=f"diagnosis/{role}",
            backend=self.backend,
            budget=self.budget,
            parse=_parser(model) if model else (lambda text: text),
            constraint=Constraint.schema(_schema(model)) if model else None,
            max_tokens=max_tokens or self.max_tokens,
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
            reply = await self._run(self._agent("followup", None, max_tokens=256), values)
        except (BudgetExceeded, BackendError) as error:
            return f"(no answer: {error})"
        return reply.texts[0] if reply.texts else ""
