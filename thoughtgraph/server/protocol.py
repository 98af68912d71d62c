"""OpenAI chat-completion requests mapped onto method runs, and runs mapped back onto responses.

The request's ``model`` names the method (``cot``, ``sc``, ``bon``, ``tot``, ``bot``, ``tr``, ``gg``).
Method options and budgets travel as extra body fields under their documented names (the method's
config fields; ``max_calls``, ``max_total_tokens`` and ``max_seconds`` for budgets). The standard fields
map onto the method where they make sense:

- ``seed``: the run's seed.
- ``temperature``, ``top_p``: the method's option of that name, where it has one (a 400 otherwise,
  except ``top_p: 1``, the neutral value many clients always send).
- ``max_tokens`` / ``max_completion_tokens``: the most one model call of the run may write (the
  method's ``chain_tokens`` or ``step_tokens``); budgets for the whole run are ``max_total_tokens`` etc.
- ``stop``: the answer is cut at the first stop string.
- ``n`` must be 1 (a method returns one answer; ``samples`` sets how many chains sc and bon draw);
  ``logprobs``, ``tools``, ``response_format`` and other generation controls are refused.

Server configuration (a method's ``server_setting`` fields: ``planner``, ``strategies_file``,
``answer_pattern``) is refused by name before anything reads it, and every size is checked against the
server's ``ServeLimits`` (``thoughtgraph.server.limits``) before the run starts.

The problem is the last user message; system and earlier messages are not given to the method.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from thoughtgraph.agents.runtime import Budget
from thoughtgraph.reasoning.api import make_config
from thoughtgraph.reasoning.methods import METHODS
from thoughtgraph.server.limits import ServeLimits, oversized

BUDGET_FIELDS = {"max_calls": "max_calls", "max_total_tokens": "max_tokens", "max_seconds": "max_seconds"}
PER_CALL_TOKENS = ("chain_tokens", "step_tokens")
STANDARD_FIELDS = {
    "model", "messages", "stream", "stream_options", "seed", "temperature", "top_p", "max_tokens",
    "max_completion_tokens", "stop", "n", "user", "logprobs", "top_logprobs", "tools", "tool_choice",
    "response_format", "frequency_penalty", "presence_penalty", "logit_bias", "parallel_tool_calls",
    "metadata", "store", "service_tier",
}  # fmt: skip
REFUSED_WHEN_SET = {"logprobs", "top_logprobs", "tools", "tool_choice", "response_format", "logit_bias",
                    "parallel_tool_calls"}  # fmt: skip
MAX_STOP_STRINGS = 4
MAX_STOP_CHARS = 256
SEED_RANGE = (-(1 << 63), 1 << 63)


class RequestError(ValueError):
    """A request the server refuses; ``status`` is the HTTP status, ``param`` the offending field."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.param, self.code = status, param, code


@dataclass
class RunRequest:
    method: str
    problem: str
    options: dict[str, Any] = field(default_factory=dict)
    config: Any = None
    """The method's config object, built (and so checked) once from ``options``."""
    budget: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = True


def method_options(method: str) -> list[str]:
    """The options of ``method`` a request may set."""
    return METHODS[method].client_options()


def _problem(messages: object, max_chars: int) -> str:
    if not isinstance(messages, list) or not messages:
        raise RequestError("`messages` must be a non-empty list", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise RequestError(f"messages[{index}] must be an object with a `role`", param="messages")
    users = [m for m in messages if m["role"] == "user"]
    if not users:
        raise RequestError("`messages` holds no user message to solve", param="messages")
    content = users[-1].get("content")
    if isinstance(content, list):  # content parts: keep the text ones
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if len(texts) != len(content):
            raise RequestError("only text content parts are supported", param="messages")
        content = "\n".join(t for t in texts if isinstance(t, str))
    if not isinstance(content, str) or not content.strip():
        raise RequestError("the last user message has no text", param="messages")
    if len(content) > max_chars:
        raise RequestError(f"the problem is {len(content):,} characters; this server takes at most {max_chars:,}",
                           param="messages", status=413)  # fmt: skip
    return content


def _number(body: dict, name: str, kind: type, *, low: float | None = None) -> Any:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not isinstance(value, int)):
        raise RequestError(f"`{name}` must be {'an integer' if kind is int else 'a number'}", param=name)
    if low is not None and value < low:
        raise RequestError(f"`{name}` must be >= {low}", param=name)
    return value


def parse_request(
    body: object, limits: ServeLimits | None = None, server_options: dict[str, dict[str, Any]] | None = None
) -> RunRequest:
    """The method run a chat-completion body asks for, or RequestError naming what is wrong. ``limits`` bound
    every size and budget; ``server_options`` are the server's own options per method (a request's options
    override the client-settable ones)."""
    limits = limits or ServeLimits()
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    method = body.get("model")
    if not isinstance(method, str) or method not in METHODS:
        shown = repr(method)[:80]
        raise RequestError(f"unknown model {shown}; models: {', '.join(METHODS)}", status=404, param="model",
                           code="model_not_found")  # fmt: skip
    config_type = METHODS[method].config
    for name in METHODS[method].server_settings():
        if name in body:
            raise RequestError(
                f"`{name}` is server configuration: a request may not set it (whoever runs the server sets it with "
                f"`thoughtgraph serve --option {method}.{name}=...`)", param=name, code="server_setting",
            )  # fmt: skip
    known_options = method_options(method)
    unknown = set(body) - STANDARD_FIELDS - set(known_options) - set(BUDGET_FIELDS)
    if unknown:
        shown = [name[:64] for name in sorted(unknown)[:5]]
        raise RequestError(
            f"unknown field(s) {shown} for model {method!r}; method options: {', '.join(known_options)}; "
            f"budgets: {', '.join(BUDGET_FIELDS)}", param=shown[0],
        )  # fmt: skip
    for name in REFUSED_WHEN_SET:
        if body.get(name) not in (None, False, [], {}):
            raise RequestError(f"`{name}` is not supported by reasoning methods", param=name)
    for name in ("frequency_penalty", "presence_penalty"):
        if body.get(name) not in (None, 0, 0.0):
            raise RequestError(f"`{name}` is not supported by reasoning methods", param=name)
    if body.get("n") not in (None, 1):
        raise RequestError("`n` must be 1: a method returns one answer (sc and bon take `samples`)", param="n")
    options = {k: body[k] for k in known_options if k in body}
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            if name == "top_p" and name not in known_options and body[name] == 1:
                continue  # the neutral value many clients always send
            if name not in known_options:
                raise RequestError(f"model {method!r} has no single `{name}`; its options: {', '.join(known_options)}",
                                   param=name)  # fmt: skip
            options.setdefault(name, _number(body, name, float, low=0))
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        per_call = next(name for name in PER_CALL_TOKENS if name in known_options)
        key = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
        options.setdefault(per_call, _number(body, key, int, low=1))
    too_large = oversized(config_type, options, limits)
    if too_large is not None:
        name, message = too_large
        if name in PER_CALL_TOKENS and name not in body:  # set through the standard field
            standard = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
            message, name = message.replace(f"`{name}`", f"`{standard}` (this method's `{name}`)"), standard
        raise RequestError(message, param=name)
    budget = {}
    for name, budget_name in BUDGET_FIELDS.items():
        if body.get(name) is not None:
            budget[budget_name] = _number(body, name, float if name == "max_seconds" else int, low=0)
    try:
        Budget(**budget)
    except ValueError as error:
        name = next((n for n, b in BUDGET_FIELDS.items() if b in str(error)), None)
        raise RequestError(str(error).replace("budget max_tokens", "budget max_total_tokens"), param=name) from None
    ceilings = {"max_calls": limits.max_run_calls, "max_tokens": limits.max_run_tokens,
                "max_seconds": limits.max_run_seconds}  # fmt: skip
    budget = {name: min(budget.get(name, ceiling), ceiling) for name, ceiling in ceilings.items()}
    try:
        config = make_config(method, **{**(server_options or {}).get(method, {}), **options})
    except (ValueError, TypeError) as error:
        raise RequestError(str(error), param=next(iter(options), None)) from None
    seed = 0 if body.get("seed") is None else _number(body, "seed", int)
    if not SEED_RANGE[0] <= seed < SEED_RANGE[1]:
        raise RequestError("`seed` must be a 64-bit integer", param="seed")
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if (not isinstance(stop, list) or len(stop) > MAX_STOP_STRINGS
            or not all(isinstance(s, str) and 0 < len(s) <= MAX_STOP_CHARS for s in stop)):  # fmt: skip
        raise RequestError(f"`stop` must be a string or up to {MAX_STOP_STRINGS} non-empty strings of at most "
                           f"{MAX_STOP_CHARS} characters", param="stop")  # fmt: skip
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise RequestError("`stream_options` must be an object", param="stream_options")
    return RunRequest(
        method=method, problem=_problem(body.get("messages"), limits.max_problem_chars), options=options,
        config=config, budget=budget,
        seed=int(seed),
        stop=stop, stream=bool(body.get("stream")), include_usage=bool(stream_options.get("include_usage", True)),
    )  # fmt: skip


def cut_at_stop(text: str, stop: list[str]) -> str:
    cuts = [text.find(s) for s in stop if s in text]
    return text[: min(cuts)] if cuts else text


def openai_usage(ledger: dict[str, Any]) -> dict[str, int]:
    return {
        "prompt_tokens": int(ledger.get("prompt_tokens", 0)),
        "completion_tokens": int(ledger.get("completion_tokens", 0)),
        "total_tokens": int(ledger.get("prompt_tokens", 0)) + int(ledger.get("completion_tokens", 0)),
    }
