"""Budgets: the most calls, tokens and seconds a run may spend. Checked before every model call."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from backends import UsageLedger


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
    _started: float = field(default_factory=time.perf_counter, repr=False)

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

    def mark_exceeded(self) -> None:
        """Count the run as stopped by a budget: once, however many concurrent branches hit it."""
        self.ledger.events["budget_exceeded"] = 1

    def exceeded(self) -> str | None:
        """Why no further call may start, or None."""
        if self.max_calls is not None and self.ledger.calls >= self.max_calls:
            return f"max_calls={self.max_calls} reached"
        if self.max_tokens is not None and self.ledger.total_tokens >= self.max_tokens:
            return f"max_tokens={self.max_tokens} reached ({self.ledger.total_tokens} used)"
        if self.max_seconds is not None and time.perf_counter() - self._started >= self.max_seconds:
            return f"max_seconds={self.max_seconds} reached"
        return None

    def check(self) -> None:
        reason = self.exceeded()
        if reason:
            self.mark_exceeded()
            raise BudgetExceeded(reason)
