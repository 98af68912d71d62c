"""How many problems an eval run keeps in flight, found while it runs.

A server that decodes one request at a time gets slower with more requests in flight (they queue, and its own
threads compete with the engine's for the cores); a batching server (vLLM, SGLang, llama.cpp with several slots,
the in-process batched engine) gets faster. :class:`AdaptiveConcurrency` starts at one problem in flight and
climbs: at each level it estimates the throughput, goes one level up while that beats the best level so far by
5% (additive increase), and otherwise settles, for the rest of the run, on the fewest in flight that were within
5% of the fastest level. It starts at 1, so a run is never slower than one at concurrency 1 for longer than one
window; a level that runs at less than 1/1.5 of the best rate after its first round (as many completions as it
lets in flight) is given up then (a one-at-a-time server whose threads fight over the cores: llama_cpp.server
measured 23 tokens/s at one in flight, 7 at two; on another machine 120 and 50), so the probe costs one round,
not a window. ``--concurrency N`` fixes the level instead.

The estimate: the level's in-flight count times the tokens of its completions over their own seconds (each
problem's time inside the gate). A queueing server stretches every request's time as much as it adds requests,
so the product does not grow; a batching one keeps each request's time nearly flat, so it does. This is steadier
than tokens completed per second of the window's clock: chains of 30 and 256 tokens finish in any order, and a
window of four to eight completions counted the ones that happened to land in it (measured, the same in-process
run settled at four in flight once and at two the next, 1.64x and 1.42x the baseline). Completions that entered
under an earlier level, and the run's first completion (a warm-up: a cold server), are not counted. A level is
measured over at least four completions, and two per problem in flight.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from dataclasses import dataclass

GAIN = 1.05
"""A level must beat the best one seen by this factor to count as better (noise is not progress)."""
ABANDON = 1.5
"""A level this many times slower than the best one seen is given up without waiting for its window."""


WARM_UP = 1
"""Completions at the first level that are not measured: the first request may pay for a cold server (a prompt
cache to fill, lazy loading), and a baseline it slows makes every later level look better than it is."""
WINDOW = 4
"""Fewest completions a level is measured over (and at least two per problem in flight)."""


@dataclass
class Level:
    limit: int
    tokens: int = 0
    seconds: float = 0.0
    """Summed time the counted completions spent in flight."""
    completions: int = 0
    unmeasured: int = 0
    """Completions still to come before this level is measured (the warm-up)."""

    def rate(self) -> float:
        """Estimated tokens/s of the whole level: in flight x tokens per second of each completion's own time."""
        return self.limit * self.tokens / max(self.seconds, 1e-9)


_ENTERED_UNDER: ContextVar[Level | None] = ContextVar("entered_under", default=None)
"""The level each task entered the gate under (a task's context is its own)."""


class AdaptiveConcurrency:
    """An async gate (``async with gate:``) whose limit follows measured throughput; ``done(tokens, seconds)``
    reports each completion, from the task that went through the gate."""

    def __init__(self, *, ceiling: int = 64, window: int | None = None) -> None:
        self.ceiling = ceiling
        self.window = window
        self.limit = 1
        self.settled = False
        self.levels: list[tuple[int, float]] = []
        """(limit, tokens/s) of every finished window, in order: what the run tried."""
        self._level = Level(1, unmeasured=WARM_UP)
        self._in_flight = 0
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> AdaptiveConcurrency:
        async with self._changed:
            await self._changed.wait_for(lambda: self._in_flight < self.limit)
            self._in_flight += 1
        _ENTERED_UNDER.set(self._level)  # in the caller's task, read back by its done()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        async with self._changed:
            self._in_flight -= 1
            self._changed.notify_all()

    async def done(self, tokens: int, seconds: float) -> None:
        """One problem finished with ``tokens`` completion tokens after ``seconds`` in flight: count it, and move
        at the end of a window."""
        level = self._level
        if self.settled:
            return
        if _ENTERED_UNDER.get() is not level:
            return  # it entered under an earlier level: its time tells little about this one
        if level.unmeasured:  # warming up: measured from the next completion on
            level.unmeasured -= 1
            return
        level.tokens += tokens
        level.seconds += seconds
        level.completions += 1
        rate = level.rate()
        previous_best = max((seen for _, seen in self.levels), default=None)
        round_done = level.completions >= level.limit  # fewer completions underrate a level that batches
        far_slower = previous_best is not None and round_done and rate * ABANDON < previous_best
        if not far_slower and level.completions < (self.window or max(WINDOW, 2 * level.limit)):
            return
        self.levels.append((level.limit, rate))
        if previous_best is None or rate >= previous_best * GAIN:  # better: one more in flight
            if level.limit < self.ceiling:
                await self._move(level.limit + 1)
            else:
                self.settled = True
        else:  # no better: the fewest in flight that is as fast as the best level seen, for the rest of the run
            best = max(seen for _, seen in self.levels)
            await self._move(min(limit for limit, seen in self.levels if seen * GAIN >= best))
            self.settled = True

    async def _move(self, limit: int) -> None:
        self.limit = limit
        self._level = Level(limit)
        async with self._changed:
            self._changed.notify_all()

    def report(self) -> dict[str, object]:
        """For results.json: the level the run settled on and what each window measured."""
        return {
            "mode": "adaptive",
            "final": self.limit,
            "levels": [{"in_flight": limit, "tokens_per_second": round(rate, 2)} for limit, rate in self.levels],
        }
