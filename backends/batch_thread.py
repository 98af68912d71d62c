"""Engines that take a whole batch at once (transformers' ``model.generate``, vLLM's offline ``LLM.generate``)
in the one engine-thread shape: requests that arrive while a batch runs, or within ``window_seconds`` of the
first of an idle engine, go to the engine together (up to ``max_batch``), and each caller gets back exactly
its own result. A request whose caller gave up before its batch started is not run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from thoughtgraph.backends.engine_thread import EngineJob, EngineThread, Outcome, report
from thoughtgraph.backends.errors import BackendError
from thoughtgraph.backends.types import Request, Result

RunBatch = Callable[[list[Request]], list[Result]]


class BatchThread(EngineThread):
    thread_name = "batch engine"

    def __init__(self, run_batch: RunBatch, *, max_batch: int, window_seconds: float = 0.002) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._run_batch = run_batch
        self.max_batch = max_batch
        self.window_seconds = window_seconds
        self._queued: list[EngineJob] = []
        self._batch: list[EngineJob] = []
        self.batch_sizes: list[int] = []
        """Size of every batch handed to the engine, for benchmarks and tests."""
        self._start_thread()

    def job(
        self, request: Request, stop: threading.Event, on_done: Callable[[Result | BaseException], None]
    ) -> EngineJob:
        """The job for one request (``run_jobs(engine, requests, engine.job)``)."""
        return EngineJob(request=request, prompt=[], on_done=on_done, stop=stop)

    def _open(self, job: EngineJob) -> None:
        self._queued.append(job)

    def _admit(self) -> None:
        if len(self._queued) < self.max_batch and self.window_seconds > 0:
            time.sleep(self.window_seconds)  # let concurrent callers join this batch
            with self._wake:
                arrived, self._inbox = self._inbox, []
            self._queued.extend(arrived)
        batch, self._queued = self._queued[: self.max_batch], self._queued[self.max_batch :]
        for job in batch:
            if job.stop.is_set():  # the caller gave up before anything ran: nothing is owed
                report(job, BackendError("cancelled before it started"))
        self._batch = [job for job in batch if not job.stop.is_set()]

    def _step(self) -> None:
        batch = self._batch
        if not batch:
            return
        self.batch_sizes.append(len(batch))
        try:
            outcomes: list[Outcome] = list(self._run_batch([job.request for job in batch]))
        except Exception as error:  # the engine failed this batch: its callers hear why, the queue goes on
            outcomes = [error] * len(batch)
        self._batch = []
        for job, outcome in zip(batch, outcomes, strict=True):
            report(job, outcome)

    def _busy(self) -> bool:
        return bool(self._queued)

    def _jobs_in_hand(self) -> list[EngineJob]:
        return self._queued + self._batch

    def _drop_all(self) -> None:
        self._queued, self._batch = [], []

    def _release(self) -> None:
        pass
