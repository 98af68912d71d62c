"""An agent is a role prompt, a backend, an output parser, and an output constraint where one helps.

Agents are the only place methods issue generations, so every call is budgeted and counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from thoughtgraph.agents.runtime.budget import Budget
from thoughtgraph.backends import Backend, Constraint, Request, Result
from thoughtgraph.prompts import PromptTemplate, load_prompt

T = TypeVar("T")


@dataclass
class Reply(Generic[T]):
    texts: list[str]
    parsed: list[T]
    result: Result


@dataclass
class Agent(Generic[T]):
    role: str
    """The prompt name, e.g. ``bot/thinker``."""
    backend: Backend
    budget: Budget
    parse: Callable[[str], T] = field(default=lambda text: text)  # type: ignore[assignment]
    constraint: Constraint | None = None
    """Used only when the backend supports its kind; the parser must cope with free text otherwise."""
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    stop_pattern: str | None = None
    """Generation ends right after this regular expression matches (see ``backends.Request``)."""
    stop_repeated_sentence: int = 0
    """Generation ends before a sentence of at least this many characters repeats (0: off; ``backends.Request``)."""
    min_tokens: int = 0
    """Tokens before which neither a stop string nor the end of the reply ends a sample."""
    prompt_folder: str | None = None

    @property
    def prompt(self) -> PromptTemplate:
        return load_prompt(self.role, folder=self.prompt_folder)

    def request(
        self,
        *,
        n: int = 1,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        logprobs: bool = False,
        history: tuple[tuple[str, str], ...] = (),
        reply_so_far: str | None = None,
        **values: Any,
    ) -> Request:
        """The role's request; with ``reply_so_far`` the model continues that unfinished reply in place."""
        constraint = self.constraint
        if constraint is not None and constraint.kind not in self.backend.capabilities.constraints:
            constraint = None
        continuation = (("assistant", reply_so_far),) if reply_so_far else ()
        return Request.chat(
            *history,
            *self.prompt.render(**values),
            *continuation,
            continue_final_message=bool(continuation),
            min_tokens=min(self.min_tokens, self.max_tokens),
            n=n,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            max_tokens=self.max_tokens,
            stop=self.stop,
            stop_pattern=self.stop_pattern,
            stop_repeated_sentence=self.stop_repeated_sentence,
            logprobs=logprobs,
            constraint=constraint,
        )

    async def run(self, **options: Any) -> Reply[T]:
        """One request from this role (``history``: earlier turns, placed before the role prompt)."""
        request = self.request(**options)
        with self.budget.reserve(request, self.backend.count_prompt_tokens) as affordable:
            result = await self.backend.generate_one(affordable)
        texts = [c.text.strip() for c in result.choices]
        return Reply(texts, [self.parse(t) for t in texts], result)
