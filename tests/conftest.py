"""Shared fixtures. Real engines are session-scoped: loading them once keeps the suite fast."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("THOUGHTGRAPH_DATA", REPO.parent / "shared" / "data"))


def die_with_parent() -> None:
    """Linux: a server started by a test gets SIGKILL when the test process dies, even if a timeout skips
    teardown."""
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@contextmanager
def thoughtgraph_serve(*flags: str, log: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """A real ``thoughtgraph serve`` process on a free port with ``flags``, its output in ``log``; yields the
    base URL once ``/v1/models`` answers, and stops the server afterwards."""
    import httpx

    port = free_port()
    command = [str(Path(sys.executable).with_name("thoughtgraph")), "serve", "--port", str(port), *flags]
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env,
                                   preexec_fn=die_with_parent)  # fmt: skip
        url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "/models", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "thoughtgraph serve did not come up"
                time.sleep(0.2)
        try:
            yield url
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """A real ``python -m llama_cpp.server`` on 127.0.0.1 serving the embedded model."""

    def __init__(self) -> None:
        from thoughtgraph.backends.presets import resolve_gguf

        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(resolve_gguf("smollm2")),
            "--model_alias", "smollm2",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_threads", "2", "--n_ctx", "2048",
        ]  # fmt: skip
        # a pipe would fill up with llama.cpp's load log and block the server; closed in stop()
        self.log = tempfile.TemporaryFile()  # noqa: SIM115
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"llama_cpp.server exited: {self.log.read().decode()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.base_url}/models", timeout=1).read()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("llama_cpp.server did not answer within 60 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="session")
def llama_backend():
    from thoughtgraph.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend("smollm2")
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def llama_server():
    server = LlamaServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def hf_backend():
    from thoughtgraph.backends.hf import HFBackend

    backend = HFBackend("smollm2", refill=False)  # the coalesced generate path; refill: test_hf_refill.py
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "gsm8k" / "test.jsonl").is_file():
        raise RuntimeError(f"shared data not found at {DATA_DIR}; set THOUGHTGRAPH_DATA")
    return DATA_DIR
