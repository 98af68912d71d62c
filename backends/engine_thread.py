"""The thread a continuous-batching engine runs in: jobs arrive in an inbox, and each turn of the loop admits
what fits and runs one decode step over everything admitted.

Subclasses implement ``_open(job)`` (take an arrived job), ``_admit()``, ``_step()``, ``_busy()`` (work in
hand), ``_jobs_in_hand()`` and ``_drop_all()`` (forget everything after a failure), and ``_release()`` (free
the engine's memory once the thread has stopped). A failed step fails every job in hand with its error;
closing fails them with a clear message. A caller that cannot be told (its event loop already closed) does
not stop the engine.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from backends.errors import BackendError

logger = logging.getLogger(__name__)


class EngineThread:
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

    def _open(self, job: Any) -> None:
        raise NotImplementedError

    def _admit(self) -> None:
        raise NotImplementedError

    def _step(self) -> None:
        raise NotImplementedError

    def _busy(self) -> bool:
        raise NotImplementedError

    def _jobs_in_hand(self) -> list[Any]:
        raise NotImplementedError

    def _drop_all(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError


def report(job: Any, outcome: Any) -> None:
    """Tell the caller; a caller whose side fails (its event loop already closed) must not stop the engine."""
    try:
        job.on_done(outcome)
    except Exception:  # nothing to hand the result to; the other requests go on
        logger.debug("a finished request's caller could not be told", exc_info=True)
