"""Budgets: the most calls, tokens and seconds a run may spend, as hard limits.

Calls and tokens are *reserved* before a request is sent, so concurrent branches cannot all pass
the check and overspend: a request counts against the budget from the moment it is sent (its
prompt tokens plus ``n * max_tokens``), and once it returns its real usage replaces the
reservation. A request's ``max_tokens`` is clamped to what is left; a request that cannot get
even one completion token is not sent. The deadline (``max_seconds``) bounds every wait of the
run (see ``reasoning.api.run_method``).

Prompt tokens are counted by the backend (exact for llama.cpp, transformers and the scripted
double; an estimate for remote servers, whose tokenizers we do not have, so there a run can end
a few tokens over ``max_tokens``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from thoughtgraph.backends import Request, UsageLedger


class BudgetExceeded(Exception):
    """Raised when a run has spent a budget; the method then answers with what it has."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Budget:
    max_calls: int | None = None
    max_tokens: int | None = None
    max_seconds: float | None = None
    ledger: UsageLedger = field(default_factory=UsageLedger)
    """The run's ledger: what the budget is measured against."""
    bound_by: str | None = None
    """The first limit that bound the run (a request refused or clamped, or the deadline); None if none did."""
    _started: float = field(default_factory=time.perf_counter, repr=False)
    _reserved_calls: int = field(default=0, repr=False)
    _reserved_tokens: int = field(default=0, repr=False)
    _held_calls: int = field(default=0, repr=False)
    _held_tokens: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_tokens", "max_seconds"):
            value = getattr(self, name)
            if value is not None and not (0 < value < math.inf):  # NaN fails both comparisons
                raise ValueError(f"budget {name} must be positive and finite, got {value}")

    def seconds_left(self) -> float | None:
        """Time until the deadline (None without one); what every wait of the run is bounded by."""
        if self.max_seconds is None:
            return None
        return max(0.0, self.max_seconds - (time.perf_counter() - self._started))

    @property
    def calls_committed(self) -> int:
        """Calls answered plus calls in flight."""
        return self.ledger.calls + self._reserved_calls

    @property
    def tokens_committed(self) -> int:
        """Tokens spent plus tokens reserved by requests in flight."""
        return self.ledger.total_tokens + self._reserved_tokens

    def bind(self, reason: str) -> None:
        """Record that a limit bound the run: the first reason is kept, and the run is counted once."""
        if self.bound_by is None:
            self.bound_by = reason
        self.ledger.events["budget_exceeded"] = 1

    @contextmanager
    def holding_back(self, calls: int, tokens: int) -> Iterator[None]:
        """Inside: ``calls`` and ``tokens`` of the limits are set aside (for a fallback chain after it)."""
        self._held_calls, self._held_tokens = calls, tokens
        try:
            yield
        finally:
            self._held_calls = self._held_tokens = 0

    def calls_left(self) -> int | None:
        """Calls that may still start (None: no call limit)."""
        return None if self.max_calls is None else self.max_calls - self._held_calls - self.calls_committed

    def tokens_left(self) -> int | None:
        """Tokens that may still be committed (None: no token limit)."""
        return None if self.max_tokens is None else self.max_tokens - self._held_tokens - self.tokens_committed

    def exceeded(self) -> str | None:
        """Why no further call may start, or None."""
        if self.max_calls is not None and self.calls_left() <= 0:
            return f"max_calls={self.max_calls} reached"
        if self.max_tokens is not None and self.tokens_left() <= 0:
            return f"max_tokens={self.max_tokens} reached"
        if self.max_seconds is not None and time.perf_counter() - self._started >= self.max_seconds:
            return f"max_seconds={self.max_seconds} reached"
        return None

    def check(self) -> None:
        reason = self.exceeded()
        if reason:
            self.bind(reason)
            raise BudgetExceeded(reason)

    @contextmanager
    def reserve(self, request: Request, count_prompt_tokens: Callable[[Request], int]) -> Iterator[Request]:
        """Reserve one call and the request's tokens while it runs; yields the request, its ``max_tokens``
        clamped to what the budget has left. Raises BudgetExceeded when it cannot be sent at all.
        Prompt tokens are counted (``count_prompt_tokens``) only under a token budget: tokenizing costs time."""
        self.check()
        prompt_tokens = 0
        if self.max_tokens is not None:
            prompt_tokens = count_prompt_tokens(request)
            per_sample = (self.tokens_left() - prompt_tokens) // request.n
            if per_sample < 1:
                reason = f"max_tokens={self.max_tokens} reached"
                self.bind(reason)
                raise BudgetExceeded(reason)
            if per_sample < request.max_tokens:
                self.bind(f"max_tokens={self.max_tokens} reached")
                request = dataclasses.replace(
                    request, max_tokens=per_sample, min_tokens=min(request.min_tokens, per_sample)
                )
        tokens = prompt_tokens + request.n * request.max_tokens
        self._reserved_calls += 1
        self._reserved_tokens += tokens
        try:
            yield request
        finally:
            self._reserved_calls -= 1
            self._reserved_tokens -= tokens
