"""What one request to ``thoughtgraph serve`` may ask for, set by whoever runs the server.

A network client is untrusted: it may choose a method and that method's sizes, sampling settings and
budgets, within these ceilings, and nothing that is server configuration (a backend, a file, a pattern the
server compiles: fields declared with ``server_setting`` in the method's config). Every request is checked
against the limits before any work starts; a request over one is refused with a 400 that names the field
and the limit. Budgets are ceilings, so a request's ``max_calls``/``max_total_tokens``/``max_seconds`` above
the server's is lowered to it, and a request without one gets the server's.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from thoughtgraph.reasoning.options import SizeKind, size_kind


@dataclass(frozen=True)
class ServeLimits:
    max_width: int = 16
    """Parallel branches of one fan-out (``samples``, ``trees``, ``paths``, ``candidates``, ``beam`` ...)."""
    max_depth: int = 256
    """Sequential steps, rounds or iterations (``max_depth``, ``max_steps``, ``iterations`` ...)."""
    max_tokens: int = 4096
    """Tokens one model call may write (``max_tokens``, ``chain_tokens``, ``step_tokens`` ...)."""
    max_count: int = 256
    """Any other count a method takes, and the length of a list option."""
    max_option_chars: int = 1_000
    """Longest text option (``final_answer_cue``, ``step_boundary``, a ``start_steps`` entry ...): such text
    goes into prompts and stop strings, so it is bounded like the problem is."""
    max_run_calls: int = 2000
    """Model calls one run may make (a request's ``max_calls`` may ask for fewer)."""
    max_run_tokens: int = 2_000_000
    """Prompt + completion tokens one run may use (``max_total_tokens`` may ask for fewer)."""
    max_run_seconds: float = 600.0
    """Longest a run may take (``max_seconds`` may ask for less)."""
    max_body_bytes: int = 1 << 20
    """Largest request body, declared or streamed (413 beyond)."""
    max_json_depth: int = 32
    """Deepest nesting of arrays and objects in a request body."""
    max_problem_chars: int = 100_000
    """Longest problem (the last user message)."""
    max_concurrent_runs: int = 64
    """Runs in flight at once; a request beyond them gets a 429 with ``Retry-After``."""
    header_timeout_seconds: float = 10.0
    """A connection must deliver a whole request head within this time, and no body read may stall
    longer, or it is closed (slow or half-open clients cannot hold connections)."""
    max_connections: int = 512
    """Open connections at once; more get a 503 from the HTTP layer."""

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"serve limit {item.name} must be a positive number, got {value!r}")

    def ceiling(self, kind: SizeKind) -> int:
        return {"width": self.max_width, "depth": self.max_depth, "tokens": self.max_tokens,
                "count": self.max_count}[kind]  # fmt: skip


def _longest_text(value: Any) -> int:
    """Length of the longest string in an option value (strings inside lists too; 0 when there is none)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list | tuple):
        return max((_longest_text(v) for v in value), default=0)
    return 0


def oversized(config_type: type, options: dict[str, Any], limits: ServeLimits) -> tuple[str, str] | None:
    """(option, message) for the first option over its size ceiling or with a text over ``max_option_chars``,
    or None. Values are read as given (ints, or lists for tuple options); type errors are left to the config's
    own check."""
    for item in fields(config_type):
        if item.name not in options:
            continue
        longest = _longest_text(options[item.name])
        if longest > limits.max_option_chars:
            return item.name, (
                f"`{item.name}` holds text over this server's limit: at most {limits.max_option_chars:,} characters "
                f"(the server sets it with --max-option-chars), got {longest:,}"
            )
        kind = size_kind(item)
        if kind is None:
            continue
        value, ceiling = options[item.name], limits.ceiling(kind)
        size = len(value) if isinstance(value, list | tuple) else value
        if isinstance(size, int) and not isinstance(size, bool) and size > ceiling:
            unit = " entries" if isinstance(value, list | tuple) else ""
            message = (
                f"`{item.name}` is over this server's limit: at most {ceiling:,}{unit} ({kind} limit; the server "
                f"sets it with --max-{kind}), got {size:,}"
            )
            return item.name, message
    return None
