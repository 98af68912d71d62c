"""The one shape of every in-process engine: a thread of its own, jobs arriving in an inbox, and each turn of
the loop admitting what fits and running one step over everything admitted (a decode call for the
continuous-batching engines of llama.cpp and transformers, a whole ``generate`` call for
:class:`~backends.batch_thread.BatchThread`).

Subclasses implement the abstract methods below and extend :class:`EngineJob` with their own fields. A
failed step fails every job in hand with its error; closing fails them with a clear message. A caller that
cannot be told (its event loop already closed) does not stop the engine.

The asyncio side is :func:`run_jobs`: a backend's ``_generate`` hands its requests to the engine as jobs and
awaits them. A caller that stops waiting (a deadline) sets its job's ``stop`` event, and the engine stops that
request at its next token (or before it starts); the work that ran is not lost from the books: its usage is
recorded in the ledgers that were open when the caller submitted it, and those ledgers can ``settle()`` until
it has been.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from thoughtgraph.backends.errors import BackendError
from thoughtgraph.backends.ledger import owe, record_usage
from thoughtgraph.backends.types import Request, Result

logger = logging.getLogger(__name__)


@dataclass
class EngineJob:
    """One request in an engine thread: its prompt tokens, whom to tell when it ends, and its stop signal (set
    when the caller gives up). Engines subclass it with their own fields."""

    request: Request
    prompt: list[int]
    on_done: Callable[[Result | BaseException], None]
    stop: threading.Event
    started: float = field(default_factory=time.perf_counter)
    finished: int = 0
    """Sequences (rows) of this job that have ended."""


class EngineThread(ABC):
    thread_name = "engine"

    def _start_thread(self) -> None:
        self._inbox: list[Any] = []
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()

    # -- called from other threads ----------------------------------------------------------------

    def submit(self, job: Any) -> None:
        with self._wake:
            if self._closed:
                raise BackendError(f"the {self.thread_name} engine is closed")
            self._inbox.append(job)
            self._wake.notify()

    def close(self) -> None:
        """Stop the engine thread (requests still in it fail with a clear error) and free the engine."""
        with self._wake:
            if self._closed:
                return
            self._closed = True
            self._wake.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        self._release()

    # -- engine thread ----------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._inbox and not self._busy() and not self._closed:
                    self._wake.wait()
                if self._closed:
                    jobs = self._inbox + self._jobs_in_hand()
                    for job in {id(j): j for j in jobs}.values():
                        report(job, BackendError(f"the {self.thread_name} engine was closed while the request ran"))
                    return
                arrived, self._inbox = self._inbox, []
            for job in arrived:
                self._open(job)
            try:
                self._admit()
                self._step()
            except Exception as error:  # the engine failed: every request in it hears why
                jobs = {id(j): j for j in self._jobs_in_hand()}
                self._drop_all()
                for job in jobs.values():
                    report(job, error)

    @abstractmethod
    def _open(self, job: EngineJob) -> None:
        """Take a job that has just arrived (queue it; nothing runs yet)."""

    @abstractmethod
    def _admit(self) -> None:
        """Give queued work a place in the running batch, as far as it fits."""

    @abstractmethod
    def _step(self) -> None:
        """One decode call over everything admitted."""

    @abstractmethod
    def _busy(self) -> bool:
        """Whether any job is queued or running."""

    @abstractmethod
    def _jobs_in_hand(self) -> list[EngineJob]:
        """Every job queued or running (a job may appear more than once)."""

    @abstractmethod
    def _drop_all(self) -> None:
        """Forget everything in hand after a failed step; what the failed call left behind is not trusted."""

    @abstractmethod
    def _release(self) -> None:
        """Free the engine's memory once its thread has stopped."""


def report(job: EngineJob, outcome: Result | BaseException) -> None:
    """Tell the caller; a caller whose side fails (its event loop already closed) must not stop the engine."""
    try:
        job.on_done(outcome)
    except Exception:  # nothing to hand the result to; the other requests go on
        logger.debug("a finished request's caller could not be told", exc_info=True)


# -- the asyncio side ---------------------------------------------------------------------------------------

Outcome = Result | BaseException
MakeJob = Callable[[Request, threading.Event, Callable[[Outcome], None]], EngineJob]
"""``make_job(request, stop, on_done)``: the engine's job for one request."""


@dataclass
class PendingRequest:
    """A request handed to an engine thread, with its caller's future and the ledgers it owes usage to."""

    request: Request
    answer: asyncio.Future[Result]
    settled: asyncio.Future[None]
    """Done when the engine is finished with the request (its usage recorded), whatever the caller did."""
    context: contextvars.Context
    stop: threading.Event = field(default_factory=threading.Event)


async def run_jobs(engine: EngineThread, requests: list[Request], make_job: MakeJob) -> list[Result]:
    """Run ``requests`` on ``engine`` and return their results in order. Build every job before submitting any,
    so a request the engine refuses (``make_job`` raises) leaves nothing owed."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    entries = [PendingRequest(r, loop.create_future(), loop.create_future(), context) for r in requests]
    jobs = [
        make_job(entry.request, entry.stop, lambda outcome, e=entry: loop.call_soon_threadsafe(_resolve, e, outcome))
        for entry in entries
    ]
    for entry in entries:
        owe(entry.settled)
        entry.answer.add_done_callback(lambda answer, e=entry: e.stop.set() if answer.cancelled() else None)
    for job in jobs:
        engine.submit(job)
    return list(await asyncio.gather(*(entry.answer for entry in entries)))


def _resolve(entry: PendingRequest, outcome: Outcome) -> None:
    """Hand the outcome to its caller (who records the usage), or record a result's usage for a caller that is
    gone; either way the ledgers stop waiting for this request."""
    if isinstance(outcome, BaseException):
        if not entry.answer.done():
            entry.answer.set_exception(outcome)
    elif not entry.answer.done():
        entry.answer.set_result(outcome)
    else:
        entry.context.run(record_usage, outcome.usage)
    if not entry.settled.done():
        entry.settled.set_result(None)
