"""Retries with exponential backoff and a per-attempt timeout, for transient failures only."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from thoughtgraph.backends.errors import BackendUnavailableError, TransientBackendError
from thoughtgraph.backends.ledger import record_event

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    initial_backoff_seconds: float = 0.5
    max_backoff_seconds: float = 8.0
    timeout_seconds: float | None = None
    """Per attempt; None leaves timing to the backend (in-process engines cannot be interrupted)."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.timeout_seconds is not None and self.timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {self.timeout_seconds}")

    def backoff(self, attempt: int) -> float:
        """Delay before attempt ``attempt + 1`` (full jitter keeps retrying clients from marching in step)."""
        ceiling = min(self.max_backoff_seconds, self.initial_backoff_seconds * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    async def run(self, attempt_once: Callable[[], Awaitable[T]], *, what: str) -> T:
        last_error: BaseException | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                if self.timeout_seconds is None:
                    return await attempt_once()
                return await asyncio.wait_for(attempt_once(), self.timeout_seconds)
            except TimeoutError as error:
                last_error = TransientBackendError(f"no answer within {self.timeout_seconds} s")
                last_error.__cause__ = error
            except TransientBackendError as error:
                last_error = error
            if attempt < self.max_attempts:
                record_event("retry")
                await asyncio.sleep(self.backoff(attempt))
        raise BackendUnavailableError(
            f"{what}: failed after {self.max_attempts} attempts; last error: {last_error}",
            attempts=self.max_attempts,
        ) from last_error
