"""``thoughtgraph serve`` on the scripted test double: a real uvicorn server on 127.0.0.1 per test,
called by the official ``openai`` client and by raw HTTP for the requests the client would not send."""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import openai
import pytest
import uvicorn

from thoughtgraph.backends.errors import BackendUnavailableError
from thoughtgraph.backends.scripted import ScriptedBackend, ScriptRule, scripted_tokens
from thoughtgraph.server import create_app

pytestmark = pytest.mark.integration  # a real uvicorn server per test

ANSWER = "Step one: 6 times 7.\nThe answer is 42."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(backend, **options) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(backend, **options), host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(10)


def scripted(latency: float = 0.0) -> ScriptedBackend:
    return ScriptedBackend([ScriptRule("6 times 7", [ANSWER], cycle=True)], default=ANSWER, latency_seconds=latency)


def test_models_completion_usage_and_trace_through_the_openai_client():
    backend = scripted()
    with serving(backend) as url:
        client = openai.OpenAI(base_url=url, api_key="unused")
        assert {m.id for m in client.models.list()} == {"cot", "sc", "bon", "tot", "bot", "tr", "gg", "rsim"}
        reply = client.chat.completions.create(model="sc", messages=[{"role": "user", "content": "What is 6 times 7?"}],
                                               extra_body={"samples": 3})  # fmt: skip
        assert reply.choices[0].message.content == "42"
        extension = reply.model_extra["thoughtgraph"]
        ledger = extension["ledger"]
        assert reply.usage.prompt_tokens == ledger["prompt_tokens"] > 0
        assert reply.usage.completion_tokens == ledger["completion_tokens"] > 0
        assert ledger["calls"] == len(backend.calls) == 1 and backend.calls[0].n == 3  # three chains in one call
        assert reply.usage.completion_tokens == 3 * len(scripted_tokens(ANSWER))  # summed over all three
        assert "6 times 7" in reply.choices[0].message.model_extra["reasoning_content"]
        trace = httpx.get(url + extension["trace_url"].removeprefix("/v1")).json()
        assert trace["usage"] == ledger and len(trace["graph"]["nodes"]) >= 3 and trace["answer"] == "42"
        html = httpx.get(url + extension["trace_url"].removeprefix("/v1"), params={"format": "html"})
        assert html.headers["content-type"].startswith("text/html") and "<svg" in html.text


def test_streaming_sends_thoughts_as_reasoning_then_the_answer_then_usage():
    with serving(scripted()) as url:
        client = openai.OpenAI(base_url=url, api_key="unused")
        chunks = list(client.chat.completions.create(
            model="sc", messages=[{"role": "user", "content": "What is 6 times 7?"}], stream=True,
            stream_options={"include_usage": True}, extra_body={"samples": 2},
        ))  # fmt: skip
    kinds = []
    for c in chunks:
        delta = c.choices[0].delta if c.choices else None
        if delta is not None and (delta.model_extra or {}).get("reasoning_content"):
            kinds.append("reasoning")
        elif delta is not None and delta.content:
            kinds.append("content")
        elif c.usage is not None:
            kinds.append("usage")
    assert kinds == ["reasoning", "reasoning", "content", "usage"]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "42"
    assert chunks[-1].usage.completion_tokens > 0


def test_standard_fields_map_onto_the_method():
    backend = scripted()
    with serving(backend) as url:
        client = openai.OpenAI(base_url=url, api_key="unused")
        reply = client.chat.completions.create(
            model="cot", messages=[{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "What is 6 times 7?"}],
            temperature=0.3, max_tokens=77, seed=5, stop=["2"],
        )  # fmt: skip
        for seed in (5, 6):  # the same seed again, then another
            client.chat.completions.create(model="cot", messages=[{"role": "user", "content": "What is 6 times 7?"}],
                                           temperature=0.3, seed=seed)  # fmt: skip
    assert reply.choices[0].message.content == "4"  # cut at the stop string
    request = backend.calls[0]
    assert request.temperature == 0.3 and request.max_tokens == 77 and "Be brief" not in str(request.messages)
    assert request.seed is not None and backend.calls[1].seed == request.seed != backend.calls[2].seed


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"model": "o3", "messages": [{"role": "user", "content": "x"}]}, 404, "unknown model 'o3'"),
        ({"model": "tr", "messages": [{"role": "user", "content": "x"}], "beams": 3}, 400, "method options: max_chain"),
        ({"model": "tr", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, 400, "temperature"),
        ({"model": "tr", "messages": [{"role": "user", "content": "x"}], "max_steps": "many"}, 400, "max_steps"),
        ({"model": "tr", "messages": [{"role": "user", "content": "x"}], "n": 2}, 400, "`n` must be 1"),
        ({"model": "tr", "messages": [{"role": "user", "content": "x"}], "logprobs": True}, 400, "logprobs"),
        ({"model": "gg", "messages": [{"role": "user", "content": "x"}], "temperature": 0.5}, 400, "early_temperature"),
        ({"model": "tr", "messages": []}, 400, "non-empty list"),
        ({"model": "tr", "messages": [{"role": "system", "content": "x"}]}, 400, "no user message"),
        ({"model": "tr", "messages": [{"role": "user", "content": "x"}], "max_calls": -1}, 400, "max_calls"),
        ({"model": "tr", "messages": [{"role": "user", "content": "x"}], "max_seconds": 0}, 400, "max_seconds"),
    ],
)
def test_bad_requests_are_4xx_with_a_clear_message(body, status, words):
    with serving(scripted()) as url:
        response = httpx.post(url + "/chat/completions", json=body)
    assert response.status_code == status
    assert words in response.json()["error"]["message"]


def test_bad_json_oversized_bodies_and_api_keys():
    with serving(scripted(), api_key="s3cret", max_body_bytes=2000) as url:
        anonymous = httpx.post(url + "/chat/completions", json={"model": "cot"})
        assert anonymous.status_code == 401 and "API key" in anonymous.json()["error"]["message"]
        headers = {"Authorization": "Bearer s3cret"}
        assert httpx.post(url + "/chat/completions", content=b"{not json", headers=headers).status_code == 400
        big = {"model": "cot", "messages": [{"role": "user", "content": "x" * 5000}]}
        too_big = httpx.post(url + "/chat/completions", json=big, headers=headers)
        assert too_big.status_code == 413 and "2,000 bytes" in too_big.json()["error"]["message"]
        client = openai.OpenAI(base_url=url, api_key="s3cret")
        assert client.chat.completions.create(model="cot", messages=[{"role": "user", "content": "6 times 7?"}])
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url, api_key="wrong").models.list()


class DiesAfter(ScriptedBackend):
    """The double, but the engine dies after ``healthy_calls`` calls (as a server that goes away mid-run).
    Its chains state no answer, so CoT makes a second call for the final answer alone."""

    def __init__(self, healthy_calls: int) -> None:
        super().__init__([ScriptRule("only the final answer", ["42"], cycle=True)], default="Six sevens make forty-two")
        self.healthy_calls, self.failing = healthy_calls, True

    async def _generate(self, requests):
        if self.failing and len(self.calls) >= self.healthy_calls:
            raise BackendUnavailableError("the engine process exited", attempts=1)
        return await super()._generate(requests)


def test_a_backend_failure_while_streaming_is_an_error_event_with_partial_usage():
    backend = DiesAfter(healthy_calls=1)
    with serving(backend) as url:
        client = openai.OpenAI(base_url=url, api_key="unused")
        stream = client.chat.completions.create(model="cot", messages=[{"role": "user", "content": "6 times 7?"}],
                                                stream=True)  # fmt: skip
        with pytest.raises(openai.APIError, match="engine process exited"):
            list(stream)


def test_a_backend_failure_mid_run_is_a_5xx_with_partial_usage_and_the_server_keeps_serving():
    backend = DiesAfter(healthy_calls=1)
    with serving(backend) as url:
        body = {"model": "cot", "messages": [{"role": "user", "content": "6 times 7?"}]}
        failed = httpx.post(url + "/chat/completions", json=body)
        assert failed.status_code == 502
        error = failed.json()["error"]
        assert "engine process exited" in error["message"] and error["ledger"]["calls"] == 1
        assert error["usage"]["completion_tokens"] > 0
        backend.failing = False
        recovered = httpx.post(url + "/chat/completions", json=body)
        assert recovered.status_code == 200 and recovered.json()["choices"][0]["message"]["content"] == "42"


def test_a_client_that_disconnects_cancels_its_run():
    backend = scripted(latency=0.2)
    with serving(backend) as url:
        body = {"model": "sc", "messages": [{"role": "user", "content": "6 times 7?"}], "samples": 40,
                "stream": True}  # fmt: skip
        with httpx.stream("POST", url + "/chat/completions", json=body) as response:
            next(response.iter_lines())  # the first chunk arrives, then the client hangs up
        time.sleep(0.6)
        calls_after_disconnect = len(backend.calls)
        time.sleep(1.0)
        assert len(backend.calls) == calls_after_disconnect < 40  # nothing more reaches the engine


def test_sixteen_concurrent_clients_lose_nothing_and_memory_stays_flat():
    backend = scripted(latency=0.005)

    async def client_loop(url: str, until: float, answered: list[int], index: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            while time.monotonic() < until:
                body = {"model": "sc", "samples": 2, "messages": [{"role": "user", "content": f"6 times 7? #{index}"}]}
                response = await http.post("/chat/completions", json=body)
                assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "42"
                answered.append(index)

    async def load(url: str, seconds: float) -> list[int]:
        answered: list[int] = []
        until = time.monotonic() + seconds
        await asyncio.gather(*(client_loop(url, until, answered, i) for i in range(16)))
        return answered

    with serving(backend, trace_limit=50) as url:
        warm = asyncio.run(load(url, 2.0))
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        answered = asyncio.run(load(url, 4.0))
        gc.collect()
        growth = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
    assert len(warm) > 16 and len(answered) > 32 and set(answered) == set(range(16))
    assert len(backend.calls) == len(warm) + len(answered)  # one call (two chains) per request: none lost or doubled
    assert growth < 5_000_000, f"memory grew by {growth:,} bytes over {len(answered)} requests"


def test_a_plain_request_whose_client_gives_up_is_cancelled_too():
    backend = scripted(latency=3.0)
    with serving(backend, list_traces=True) as url:
        body = {"model": "cot", "messages": [{"role": "user", "content": "6 times 7?"}]}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + "/chat/completions", json=body, timeout=0.5)
        time.sleep(3.5)  # the engine call would have finished by now, had the run gone on
        assert backend.calls == [] and httpx.get(url + "/traces").json()["data"] == []


def test_no_run_outlives_the_servers_run_limit():
    with serving(scripted(latency=2.0), max_run_seconds=0.5) as url:
        started = time.monotonic()
        body = {"model": "cot", "messages": [{"role": "user", "content": "6 times 7?"}], "max_seconds": 100}
        reply = httpx.post(url + "/chat/completions", json=body, timeout=30).json()
    assert time.monotonic() - started < 1.9
    assert reply["choices"][0]["finish_reason"] == "length"
    assert "max_seconds=0.5" in reply["thoughtgraph"]["stopped_by"]


def test_a_run_without_an_answer_says_why_and_finishes_by_length_when_a_budget_stopped_it():
    with serving(scripted()) as url:
        client = openai.OpenAI(base_url=url, api_key="unused")
        reply = client.chat.completions.create(model="gg", messages=[{"role": "user", "content": "What is 6 times 7?"}],
                                               extra_body={"max_total_tokens": 20})  # fmt: skip
        choice = reply.choices[0]
        assert choice.finish_reason == "length" and choice.message.content == ""  # nothing a grader could misread
        why = choice.message.model_extra["reasoning_content"]
        # the server's own call limit is part of every run's budget, so it is named too
        assert why.startswith("(no answer: max_calls=2000, max_tokens=20: too small for one chain of thought")
        streamed = list(client.chat.completions.create(
            model="gg", messages=[{"role": "user", "content": "What is 6 times 7?"}], stream=True,
            extra_body={"max_total_tokens": 20},
        ))  # fmt: skip
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content", "") for c in streamed if c.choices
    )
    finishes = [c.choices[0].finish_reason for c in streamed if c.choices and c.choices[0].finish_reason]
    assert "max_tokens=20: too small for one chain of thought" in reasoning and finishes == ["length"]
