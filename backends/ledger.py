"""The usage ledger: what a piece of work cost in calls, tokens and time.

Ledgers nest. Every ledger open in the current context (including asyncio tasks spawned from it)
records each backend call, so an eval's ledger and the ledger of the method it runs both see
the same calls::

    with UsageLedger() as run_ledger:
        with UsageLedger() as problem_ledger:
            await backend.generate(...)
    # both ledgers now hold that call
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from thoughtgraph.backends.types import Usage

_active: contextvars.ContextVar[tuple[UsageLedger, ...]] = contextvars.ContextVar("active_ledgers", default=())


@dataclass
class UsageLedger:
    calls: int = 0
    """Requests answered (one request with n=4 is one call)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cache_hits: int = 0
    """Calls answered by the persistent request cache without touching the engine."""
    backend_seconds: float = 0.0
    """Sum of per-call latencies; concurrent calls overlap, so this can exceed wall time."""
    wall_seconds: float = 0.0
    """Time between entering and leaving the ledger's ``with`` block."""
    events: Counter[str] = field(default_factory=Counter)
    """Named counters: ``parse_failure``, ``retry``, ``budget_exceeded`` ..."""
    pending: set[asyncio.Future[None]] = field(default_factory=set, repr=False)
    """Engine work whose caller was cancelled but whose usage this ledger is still owed."""
    _started: float | None = field(default=None, repr=False)
    _token: contextvars.Token | None = field(default=None, repr=False)

    def __enter__(self) -> UsageLedger:
        self._started = time.perf_counter()
        self._token = _active.set((*_active.get(), self))
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._started is not None and self._token is not None
        self.wall_seconds += time.perf_counter() - self._started
        _active.reset(self._token)
        self._started = self._token = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, usage: Usage) -> None:
        self.calls += 1
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.cached_prompt_tokens += usage.cached_prompt_tokens
        self.backend_seconds += usage.latency_seconds
        if usage.from_cache:
            self.cache_hits += 1

    def merge(self, other: UsageLedger) -> None:
        """Add what ``other`` recorded (calls, tokens, seconds, events) to this ledger."""
        self.calls += other.calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_prompt_tokens += other.cached_prompt_tokens
        self.backend_seconds += other.backend_seconds
        self.cache_hits += other.cache_hits
        for name, count in other.events.items():
            self.events[name] += count

    async def settle(self, timeout: float) -> None:
        """Wait, at most ``timeout`` seconds, until cancelled engine work has stopped and reported its usage."""
        if self.pending:
            await asyncio.wait(set(self.pending), timeout=timeout)

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cached_prompt_tokens": self.cached_prompt_tokens,
            "cache_hits": self.cache_hits,
            "backend_seconds": round(self.backend_seconds, 4),
            "wall_seconds": round(self.wall_seconds, 4),
            "events": dict(self.events),
        }


def record_usage(usage: Usage) -> None:
    """Add one call's usage to every ledger open in this context."""
    for ledger in _active.get():
        ledger.add(usage)


def record_event(name: str, count: int = 1) -> None:
    """Count a named event (a parse failure, a retry ...) in every open ledger."""
    for ledger in _active.get():
        ledger.events[name] += count


def owe(settled: asyncio.Future[None]) -> None:
    """Every ledger open here is owed the usage of work that finishes when ``settled`` does."""
    for ledger in _active.get():
        ledger.pending.add(settled)
        settled.add_done_callback(ledger.pending.discard)
