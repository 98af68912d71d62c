"""Request coalescing: concurrent callers reach a blocking engine as one batch.

In-process engines (llama.cpp, transformers, vLLM's offline ``LLM``) are not safe to call from
several threads, and batching engines are much faster when handed many sequences at once. The
coalescer owns one worker thread. Requests that arrive while the engine is busy, or within a
short window of each other while it is idle, are handed to the engine together (up to
``max_batch``); each caller gets back exactly its own results.

Cancellation: a caller that stops waiting (a deadline) gets its request dropped if it has not
started; if it has, a *cancellable* engine receives one ``threading.Event`` per request and stops
that request at its next token. Either way the work that ran is not lost from the books: its usage
is recorded in the ledgers that were open when the caller submitted it, and those ledgers can
``settle()`` until it has been.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from thoughtgraph.backends.ledger import owe, record_usage
from thoughtgraph.backends.types import Request, Result

RunBatch = Callable[..., list[Result]]
"""``run_batch(requests)``, or ``run_batch(requests, stops)`` for a cancellable engine."""


@dataclass
class PendingRequest:
    """A request handed to an engine thread, with its caller's future and the ledgers it owes usage to."""

    request: Request
    answer: asyncio.Future[Result]
    settled: asyncio.Future[None]
    """Done when the engine is finished with the request (its usage recorded), whatever the caller did."""
    context: contextvars.Context
    stop: threading.Event = field(default_factory=threading.Event)


class RequestCoalescer:
    def __init__(
        self, run_batch: RunBatch, *, max_batch: int, window_seconds: float = 0.002, cancellable: bool = False
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._run_batch = run_batch
        self.max_batch = max_batch
        self.window_seconds = window_seconds
        self.cancellable = cancellable
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[PendingRequest] = []
        self._worker: asyncio.Task[None] | None = None
        self.batch_sizes: list[int] = []
        """Size of every batch handed to the engine, for benchmarks and tests."""

    async def submit(self, requests: list[Request]) -> list[Result]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (e.g. a second asyncio.run): start afresh
            self._loop, self._pending, self._worker = loop, [], None
        entries = pending_requests(loop, requests)
        self._pending.extend(entries)
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain())
        return list(await asyncio.gather(*(e.answer for e in entries)))

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            if len(self._pending) < self.max_batch and self.window_seconds > 0:
                await asyncio.sleep(self.window_seconds)  # let concurrent callers join this batch
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            live = [e for e in batch if not e.answer.done()]
            for entry in batch:
                if entry.answer.done():  # cancelled before it started: nothing ran, nothing is owed
                    _settle(entry)
            if not live:
                continue
            self.batch_sizes.append(len(live))
            arguments: list[Any] = [[e.request for e in live]]
            if self.cancellable:
                arguments.append([e.stop for e in live])
            try:
                results = await loop.run_in_executor(self._executor, self._run_batch, *arguments)
            except Exception as error:  # the engine failed: every caller of this batch hears why
                for entry in live:
                    fail(entry, error)
                continue
            for entry, result in zip(live, results, strict=True):
                deliver(entry, result)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def pending_requests(loop: asyncio.AbstractEventLoop, requests: list[Request]) -> list[PendingRequest]:
    """Futures for ``requests``, owed to the ledgers open here; a caller that cancels sets the request's stop."""
    context = contextvars.copy_context()
    entries = [PendingRequest(r, loop.create_future(), loop.create_future(), context) for r in requests]
    for entry in entries:
        owe(entry.settled)
        entry.answer.add_done_callback(lambda answer, e=entry: e.stop.set() if answer.cancelled() else None)
    return entries


def deliver(entry: PendingRequest, result: Result) -> None:
    """Hand ``result`` to its caller (who records the usage), or record it for a caller that is gone."""
    if not entry.answer.done():
        entry.answer.set_result(result)
    else:
        entry.context.run(record_usage, result.usage)
    _settle(entry)


def resolve(entry: PendingRequest, outcome: Result | BaseException) -> None:
    """``deliver`` a result or ``fail`` with an error: what an engine thread hands back for one request."""
    if isinstance(outcome, BaseException):
        fail(entry, outcome)
    else:
        deliver(entry, outcome)


def fail(entry: PendingRequest, error: BaseException) -> None:
    if not entry.answer.done():
        entry.answer.set_exception(error)
    _settle(entry)


def _settle(entry: PendingRequest) -> None:
    if not entry.settled.done():
        entry.settled.set_result(None)
