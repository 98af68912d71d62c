"""ScriptedBackend: a deterministic TEST DOUBLE that answers from programmed rules.

It exists for unit tests of algorithms (exact, reproducible, instant). It is never a model:
nothing here generates text. Each rule maps a regular expression, searched in the request's
text, to a list of responses handed out in order (the last one repeats once the list is used
up, or the list cycles with ``cycle: true``). A response is a string or ``{text, logprobs}``.

Spec string: ``scripted:path/to/script.yaml`` with::

    rules:
      - match: "Evaluate"
        responses: ["0.9", "0.2"]
      - match: "Question"
        responses:
          - {text: "Step 1 ...", logprobs: [-0.1, -0.2, -0.05]}
    default: "I do not know."     # optional; without it an unmatched request is an error
    latency_seconds: 0            # optional; simulated engine time per request

Tokens are whitespace-led words (``re.findall(r"\\s*\\S+")``), so token counts and novelty
calculations on scripted text are easy to compute by hand.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from thoughtgraph.backends.base import Backend
from thoughtgraph.backends.decoding import CompletionText
from thoughtgraph.backends.errors import BackendConfigError, BackendError
from thoughtgraph.backends.types import Capabilities, Choice, Request, Result, Usage

DEFAULT_LOGPROB = math.log(0.9)


class ScriptError(BackendError):
    """The script has no answer for a request, or its answer breaks the request's constraint."""


def scripted_tokens(text: str) -> list[str]:
    return re.findall(r"\s*\S+", text)


@dataclass
class ScriptedResponse:
    text: str
    logprobs: list[float] | None = None

    def __post_init__(self) -> None:
        if self.logprobs is not None and len(self.logprobs) != len(scripted_tokens(self.text)):
            raise BackendConfigError(
                f"scripted response {self.text[:40]!r} has {len(scripted_tokens(self.text))} tokens "
                f"but {len(self.logprobs)} logprobs"
            )

    @classmethod
    def parse(cls, raw: Any) -> ScriptedResponse:
        if isinstance(raw, ScriptedResponse):
            return raw
        if isinstance(raw, str):
            return cls(raw)
        if isinstance(raw, dict) and isinstance(raw.get("text"), str):
            return cls(raw["text"], raw.get("logprobs"))
        raise BackendConfigError(f"a scripted response must be a string or {{text, logprobs}}, got {raw!r}")


@dataclass
class ScriptRule:
    match: str
    responses: list[ScriptedResponse]
    cycle: bool = False
    _served: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        try:
            self._pattern = re.compile(self.match, re.DOTALL)
        except re.error as error:
            raise BackendConfigError(f"scripted rule pattern {self.match!r} is not a regex: {error}") from None
        self.responses = [ScriptedResponse.parse(r) for r in self.responses]
        if not self.responses:
            raise BackendConfigError(f"scripted rule {self.match!r} has no responses")

    def matches(self, text: str) -> bool:
        return self._pattern.search(text) is not None

    def next_response(self) -> ScriptedResponse:
        index = self._served % len(self.responses) if self.cycle else min(self._served, len(self.responses) - 1)
        self._served += 1
        return self.responses[index]


def request_text(request: Request) -> str:
    if request.prompt is not None:
        return request.prompt
    return "\n".join(m.content for m in request.messages or ())


class ScriptedBackend(Backend):
    """Test double. Answers each request from the first rule whose pattern occurs in the request text."""

    capabilities = Capabilities(
        chat=True,
        raw_prompt=True,
        logprobs=True,
        constraints=frozenset({"json_schema", "regex", "choice"}),
        batching=False,
        continue_message=True,
    )

    def __init__(
        self,
        rules: list[ScriptRule] | None = None,
        *,
        default: str | None = None,
        latency_seconds: float = 0.0,
        spec: str = "scripted:<inline>",
        **options: Any,
    ) -> None:
        super().__init__(spec, model_id=spec, **options)
        self.rules = rules or []
        self.default = ScriptedResponse(default) if default is not None else None
        self.latency_seconds = latency_seconds
        self.calls: list[Request] = []
        """Every request that reached the double, in order: what tests assert on."""

    @classmethod
    def from_file(cls, path: str | Path, **options: Any) -> ScriptedBackend:
        path = Path(path)
        if not path.is_file():
            raise BackendConfigError(f"scripted backend: no script file at {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise BackendConfigError(f"scripted backend: {path} is not valid YAML: {error}") from None
        if not isinstance(data, dict) or not isinstance(data.get("rules", []), list):
            raise BackendConfigError(f"scripted backend: {path} must hold a mapping with a `rules` list")
        rules = [
            ScriptRule(r["match"], r["responses"], cycle=bool(r.get("cycle", False))) for r in data.get("rules", [])
        ]
        return cls(
            rules,
            default=data.get("default"),
            latency_seconds=float(data.get("latency_seconds", 0.0)),
            spec=f"scripted:{path}",
            **options,
        )

    def token_pieces(self, text: str) -> list[str]:
        return scripted_tokens(text)

    def count_prompt_tokens(self, request: Request) -> int:
        return len(scripted_tokens(request_text(request)))

    async def _generate(self, requests: list[Request]) -> list[Result]:
        results = []
        for request in requests:
            # always yield to the event loop, as a real engine does: concurrent branches really overlap
            await asyncio.sleep(self.latency_seconds)
            self.calls.append(request)
            results.append(self._answer(request))
        return results

    def _answer(self, request: Request) -> Result:
        text = request_text(request)
        rule = next((r for r in self.rules if r.matches(text)), None)
        if rule is None and self.default is None:
            raise ScriptError(f"scripted backend has no rule matching request: {text[:120]!r}")
        choices = []
        for _ in range(request.n):
            response = rule.next_response() if rule else self.default
            assert response is not None
            choices.append(self._choice(response, request))
        completion = sum(c.completion_tokens for c in choices)
        return Result(
            choices=choices,
            usage=Usage(prompt_tokens=len(scripted_tokens(text)), completion_tokens=completion),
            model=self.model_id,
        )

    def _choice(self, response: ScriptedResponse, request: Request) -> Choice:
        tokens = scripted_tokens(response.text)
        logprobs = response.logprobs or [DEFAULT_LOGPROB] * len(tokens)
        choice = CompletionText.replay(request, tokens, logprobs, budget=request.max_tokens)
        if request.constraint is not None and choice.finish_reason == "stop":  # cut at the budget: incomplete
            _check_constraint(choice.text, request)
        return choice


def _check_constraint(text: str, request: Request) -> None:
    constraint = request.constraint
    assert constraint is not None
    ok = True
    if constraint.kind == "json_schema":
        try:
            json.loads(text)
        except json.JSONDecodeError:
            ok = False
    elif constraint.kind == "regex":
        ok = re.fullmatch(constraint.pattern or "", text) is not None
    elif constraint.kind == "choice":
        ok = text in (constraint.choices or ())
    if not ok:
        raise ScriptError(f"scripted response {text!r} breaks the request's {constraint.kind} constraint")
