"""Grading in a child process with a time limit and a memory limit, so no answer can stall or sink a run.

The graders never evaluate model text (see :mod:`evals.graders`), and their limits refuse what is
known to be expensive; this is the backstop for everything else (sympy's ``simplify`` on an
unlucky expression, math-verify on an answer nobody foresaw). The child is a plain
``python -m thoughtgraph.evals.sandbox`` that reads one JSON request per line and writes one JSON score per
line. Its address space is capped with ``RLIMIT_AS``; a call that does not answer within the time
limit gets its child killed (the next call starts a fresh one) and an ``ungradable`` Score. A
child that dies answers the same way. Nothing is retried: one attempt per answer.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from typing import IO, Any

from thoughtgraph.evals.scoring import GradingInput, Score

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_MEMORY_BYTES = 1 << 30
"""Address space the child may add to what it uses after its imports."""


class GradingSandbox:
    """One grading child process, restarted when it is killed; thread-safe (calls are serialised)."""

    def __init__(
        self, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS, memory_bytes: int = DEFAULT_MEMORY_BYTES
    ) -> None:
        if timeout_seconds <= 0 or memory_bytes <= 0:
            raise ValueError("the sandbox needs a positive time limit and memory limit")
        self.timeout_seconds = timeout_seconds
        self.memory_bytes = memory_bytes
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self.restarts = 0

    def _start(self) -> subprocess.Popen[str]:
        environment = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        process = subprocess.Popen(
            [sys.executable, "-m", "thoughtgraph.evals.sandbox", str(self.memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=environment,
        )
        ready = _read_line(process.stdout, 60.0)  # type: ignore[arg-type]
        if ready != "ready":
            process.kill()
            raise RuntimeError(f"the grading process did not start (said {ready!r})")
        return process

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def grade(self, item: GradingInput) -> Score:
        """The Score of ``item``; ``ungradable`` says why when the limits stopped it."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                if self._process is not None:
                    self.restarts += 1
                self._process = self._start()
            process = self._process
            try:
                process.stdin.write(json.dumps(asdict(item)) + "\n")  # type: ignore[union-attr]
                process.stdin.flush()  # type: ignore[union-attr]
                line = _read_line(process.stdout, self.timeout_seconds)  # type: ignore[arg-type]
            except (BrokenPipeError, OSError):
                line = None
            if line is None:
                verdict = f"grading took longer than {self.timeout_seconds} s"
                if process.poll() is not None:
                    verdict = f"the grading process died (exit code {process.returncode}; out of memory?)"
                self._stop()
                return Score(prediction=None, correct=False, ungradable=verdict)
            reply = json.loads(line)
            if "error" in reply:
                return Score(prediction=None, correct=False, ungradable=reply["error"])
            return Score(**reply["score"])

    def close(self) -> None:
        with self._lock:
            self._stop()

    def __enter__(self) -> GradingSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_line(stream: IO[str], timeout: float) -> str | None:
    """One line from the child, or None when none comes within ``timeout`` or the child closed it."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        readable, _, _ = select.select([stream], [], [], left)
        if readable:
            line = stream.readline()
            return line.rstrip("\n") if line else None


_shared: GradingSandbox | None = None
_shared_lock = threading.Lock()


def shared_sandbox() -> GradingSandbox:
    """The process's grading sandbox (started on first use, reused by every run)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = GradingSandbox()
            import atexit

            atexit.register(_shared.close)
        return _shared


def _address_space() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _serve(memory_bytes: int) -> None:
    """The child: import the graders, cap memory, then grade one JSON line at a time."""
    import logging
    import resource

    from thoughtgraph.evals.datasets import grade

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    grade(GradingInput("math", "\\frac{1}{2}", "", "0.5"))  # load math-verify's parser before the cap
    limit = _address_space() + memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    print("ready", flush=True)
    for line in sys.stdin:
        reply: dict[str, Any]
        try:
            reply = {"score": grade(GradingInput(**json.loads(line))).to_dict()}
        except MemoryError:
            reply = {"error": f"grading needed more than {memory_bytes} bytes of memory"}
        except RecursionError:
            reply = {"error": "grading recursed too deeply"}
        except Exception as error:  # one bad answer must not end the child; the parent records why
            reply = {"error": f"grading failed: {type(error).__name__}: {error}"[:500]}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
