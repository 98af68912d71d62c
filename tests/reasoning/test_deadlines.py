"""``max_seconds`` bounds everything a run waits for: a server that accepts a request and never answers
cannot hold a run past its deadline, whatever the backend's own request timeout and retries."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import pytest

from thoughtgraph.backends.openai_server import OpenAIBackend
from thoughtgraph.backends.scripted import ScriptedBackend, ScriptRule
from thoughtgraph.evals.runner import EvalConfig, read_samples, run_eval
from thoughtgraph.reasoning import solve


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections, reads what it is sent, and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    listener.close()


def test_solve_ends_at_max_seconds_although_the_server_never_answers(silent_server):
    backend = OpenAIBackend(silent_server, "m", timeout_seconds=120.0)  # 3 attempts x 120 s without the deadline
    started = time.monotonic()
    solution = solve("What is 2 + 2?", "cot", backend, max_seconds=1.0)
    elapsed = time.monotonic() - started
    assert elapsed < 3.0
    assert solution.stopped_by == "max_seconds=1.0 reached"
    assert solution.answer is None and solution.usage["events"]["budget_exceeded"] == 1


def test_each_eval_problem_ends_at_max_seconds_and_is_recorded(silent_server, tmp_path):
    data = tmp_path / "data" / "gsm8k"
    data.mkdir(parents=True)
    rows = [{"question": f"What is {k} + {k}?", "answer": f"#### {2 * k}"} for k in (1, 2)]
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = EvalConfig(
        "gsm8k", data_dir=str(tmp_path / "data"), out=str(tmp_path / "runs"), run_name="r", max_seconds=1.0
    )
    started = time.monotonic()
    results = asyncio.run(run_eval(config, backend=OpenAIBackend(silent_server, "m"), progress=False))
    assert time.monotonic() - started < 5.0  # both problems in flight at once, each bounded by 1 s
    samples = read_samples(tmp_path / "runs" / "r" / "samples.jsonl")
    assert [s["stopped_by"] for s in samples] == ["max_seconds=1.0 reached"] * 2
    assert results["counts"]["wrong"] == 2


def test_a_slow_scripted_branch_is_cut_at_the_deadline_with_the_answer_so_far():
    backend = ScriptedBackend([ScriptRule("Question", ["The answer is 4."])], latency_seconds=5.0)
    started = time.monotonic()
    solution = solve("Question: 2 + 2?", "sc", backend, samples=3, max_seconds=0.5)
    assert time.monotonic() - started < 2.0
    assert solution.stopped_by == "max_seconds=0.5 reached"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0, -1])
def test_max_seconds_must_be_a_positive_finite_number(value):
    with pytest.raises(ValueError, match="max_seconds"):
        solve("q?", "cot", ScriptedBackend([]), max_seconds=value)
    with pytest.raises(ValueError, match="max_seconds"):
        EvalConfig("gsm8k", max_seconds=value)
