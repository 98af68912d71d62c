"""The request/result vocabulary every backend speaks.

Requests validate themselves on construction, so a bad value fails where it is written,
with a message naming the field, not somewhere inside an engine.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from thoughtgraph.backends.errors import InvalidRequestError

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "repetition", "error", "cancelled"]
"""``cancelled``: the caller stopped waiting (a deadline) and the engine stopped at its next token."""
ConstraintKind = Literal["json_schema", "regex", "choice"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in ("system", "user", "assistant"):
            raise InvalidRequestError(f"message role must be system, user or assistant, got {self.role!r}")
        if not isinstance(self.content, str):
            raise InvalidRequestError(f"message content must be a string, got {type(self.content).__name__}")


@dataclass(frozen=True)
class Constraint:
    """Restricts what the model may write: a JSON schema, a regular expression, or one of a list of strings."""

    kind: ConstraintKind
    json_schema: dict[str, Any] | None = None
    pattern: str | None = None
    choices: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        expected = {"json_schema": self.json_schema, "regex": self.pattern, "choice": self.choices}
        if self.kind not in expected:
            raise InvalidRequestError(f"constraint kind must be json_schema, regex or choice, got {self.kind!r}")
        if not expected[self.kind]:
            raise InvalidRequestError(f"a {self.kind} constraint needs its value (json_schema/pattern/choices)")
        if self.kind == "choice" and any(not isinstance(c, str) or not c for c in self.choices or ()):
            raise InvalidRequestError("choice constraint options must be non-empty strings")

    @classmethod
    def schema(cls, json_schema: dict[str, Any]) -> Constraint:
        return cls("json_schema", json_schema=json_schema)

    @classmethod
    def regex(cls, pattern: str) -> Constraint:
        return cls("regex", pattern=pattern)

    @classmethod
    def one_of(cls, *choices: str) -> Constraint:
        return cls("choice", choices=tuple(choices))


@dataclass(frozen=True)
class Request:
    """One generation request: chat ``messages`` or a raw ``prompt`` (exactly one), sampled ``n`` times."""

    messages: tuple[Message, ...] | None = None
    prompt: str | None = None
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: bool = False
    constraint: Constraint | None = None
    stop_pattern: str | None = None
    """A regular expression: generation ends right after its first match in the text, the match kept
    (e.g. once a final answer has been stated). Engines that can check it while decoding stop there;
    for the others the text is cut afterwards (the tokens past the cut are still billed)."""
    stop_repeated_sentence: int = 0
    """When positive: generation ends before the first sentence of at least this many characters that repeats,
    word for word, one the completion already holds (a leading step number or bullet aside), with finish reason
    ``"repetition"``; 0 turns it off. A greedy chain that starts copying itself has stopped making progress."""
    min_tokens: int = 0
    """Completion tokens before which neither an end-of-sequence token nor a stop string ends a sample
    (llama.cpp masks the end tokens while decoding; openai passes vLLM's ``min_tokens``; hf masks the
    end token but may stop at a stop string earlier)."""
    continue_final_message: bool = False
    """The last message is the assistant's unfinished reply, which the model continues in place (no new
    turn): how a chain of thought is grown one step at a time."""

    def __post_init__(self) -> None:
        if self.stop_pattern is not None:
            try:
                re.compile(self.stop_pattern)
            except (re.error, TypeError) as error:
                message = f"stop_pattern {self.stop_pattern!r} is not a regular expression: {error}"
                raise InvalidRequestError(message) from None
        if self.messages is not None and not isinstance(self.messages, tuple):
            object.__setattr__(self, "messages", tuple(self.messages))
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        elif not isinstance(self.stop, tuple):
            object.__setattr__(self, "stop", tuple(self.stop))
        if (self.messages is None) == (self.prompt is None):
            raise InvalidRequestError("a request needs exactly one of `messages` or `prompt`")
        if self.prompt is not None and not self.prompt.strip():
            raise InvalidRequestError("the prompt is empty")
        if self.messages is not None:
            if not self.messages:
                raise InvalidRequestError("the message list is empty")
            if not any(m.content.strip() for m in self.messages):
                raise InvalidRequestError("every message is empty: there is nothing to answer")
        if not isinstance(self.stop_repeated_sentence, int) or self.stop_repeated_sentence < 0:
            raise InvalidRequestError(
                f"stop_repeated_sentence must be a non-negative integer, got {self.stop_repeated_sentence!r}"
            )
        if not isinstance(self.n, int) or self.n < 1:
            raise InvalidRequestError(f"n must be a positive integer, got {self.n!r}")
        if not isinstance(self.max_tokens, int) or self.max_tokens <= 0:
            raise InvalidRequestError(f"max_tokens must be a positive integer, got {self.max_tokens!r}")
        if not isinstance(self.min_tokens, int) or not 0 <= self.min_tokens <= self.max_tokens:
            raise InvalidRequestError(f"min_tokens must be in [0, max_tokens], got {self.min_tokens!r}")
        if self.continue_final_message and (self.messages is None or self.messages[-1].role != "assistant"):
            raise InvalidRequestError("continue_final_message needs chat messages ending with an assistant message")
        if not 0.0 <= self.temperature <= 5.0:
            raise InvalidRequestError(f"temperature must be in [0, 5], got {self.temperature!r}")
        if not 0.0 < self.top_p <= 1.0:
            raise InvalidRequestError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise InvalidRequestError(f"stop strings must be non-empty strings, got {self.stop!r}")

    @classmethod
    def chat(cls, *turns: tuple[Role, str] | Message, **options: Any) -> Request:
        """``Request.chat(("system", "..."), ("user", "..."), n=2)``."""
        messages = tuple(t if isinstance(t, Message) else Message(*t) for t in turns)
        return cls(messages=messages, **options)

    @property
    def stops_on_text(self) -> bool:
        """Whether the text decides where generation ends beyond fixed stop strings (the stop pattern, a repeat)."""
        return self.stop_pattern is not None or self.stop_repeated_sentence > 0

    @property
    def is_deterministic(self) -> bool:
        """Whether repeating the request on the same model must give the same result."""
        return self.temperature == 0.0 or self.seed is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def cache_key(self, model_id: str) -> str:
        """A stable digest of the whole request plus the model that answers it."""
        payload = json.dumps({"model": model_id, "request": self.to_dict()}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class Choice:
    """One sampled completion. ``tokens``/``logprobs`` are filled when the request asked for logprobs."""

    text: str
    finish_reason: FinishReason
    completion_tokens: int
    tokens: list[str] | None = None
    logprobs: list[float] | None = None


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_seconds: float = 0.0
    cached_prompt_tokens: int = 0
    """Prompt tokens the engine did not have to recompute (prefix/KV-cache reuse), where the engine says."""
    from_cache: bool = False
    """True when the whole result came from the persistent request cache (no engine call)."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Result:
    choices: list[Choice]
    usage: Usage = field(default_factory=Usage)
    model: str = ""

    @property
    def text(self) -> str:
        """The first choice's text: the common case of ``n == 1``."""
        return self.choices[0].text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        return cls(
            choices=[Choice(**c) for c in data["choices"]],
            usage=Usage(**data["usage"]),
            model=data.get("model", ""),
        )


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared before any call so methods can refuse it up front."""

    chat: bool = True
    raw_prompt: bool = True
    logprobs: bool = False
    constraints: frozenset[ConstraintKind] = frozenset()
    batching: bool = False
    """The engine runs many sequences in one forward pass, so concurrent requests should be coalesced."""
    continue_message: bool = False
    """Requests may continue the final assistant message in place (``continue_final_message``)."""
