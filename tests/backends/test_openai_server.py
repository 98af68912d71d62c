"""The openai backend against a real llama_cpp.server on 127.0.0.1, through the official SDK."""

import asyncio
import json
import os

import pytest

from tests.conftest import LlamaServer, free_port
from thoughtgraph.backends import (
    BackendUnavailableError,
    Constraint,
    Request,
    RetryPolicy,
    UsageLedger,
    create_backend,
)

pytestmark = pytest.mark.integration
FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff_seconds=0.05, max_backoff_seconds=0.1)


@pytest.fixture
def backend(llama_server):
    return create_backend(f"openai:{llama_server.base_url}#smollm2", structured_outputs="llamacpp")


async def test_chat_completion_with_logprobs_and_server_usage(backend):
    with UsageLedger() as ledger:
        result = await backend.generate_one(Request.chat(("user", "Say hello."), max_tokens=12, logprobs=True))
    choice = result.choices[0]
    assert choice.text.strip()
    assert len(choice.logprobs) == len(choice.tokens) > 0
    assert all(lp <= 0.0 for lp in choice.logprobs)
    assert result.usage.prompt_tokens > 0 and 0 < result.usage.completion_tokens <= 12
    assert ledger.prompt_tokens == result.usage.prompt_tokens


async def test_raw_completion_endpoint_and_stop_string(backend):
    result = await backend.generate_one(Request(prompt="1, 2, 3, 4, 5,", max_tokens=30, stop=(" 8",), logprobs=True))
    assert " 8" not in result.text
    assert result.choices[0].logprobs and all(lp <= 0 for lp in result.choices[0].logprobs)


async def test_concurrent_requests_all_complete(backend):
    requests = [Request.chat(("user", f"Count to {i}."), max_tokens=8) for i in range(2, 6)]
    results = await asyncio.gather(*(backend.generate_one(r) for r in requests))
    assert len(results) == 4 and all(r.text for r in results)


async def test_json_schema_constraint_through_the_server(backend):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    result = await backend.generate_one(
        Request.chat(("user", "Name a city as JSON."), max_tokens=40, constraint=Constraint.schema(schema))
    )
    assert isinstance(json.loads(result.text)["city"], str)


async def test_model_is_discovered_when_the_spec_names_none(llama_server):
    backend = create_backend(f"openai:{llama_server.base_url}")
    result = await backend.generate_one(Request.chat(("user", "Hi"), max_tokens=4))
    assert backend.model == "smollm2" and result.text is not None


async def test_unreachable_server_is_retried_then_named():
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = create_backend(f"openai:{url}#m", retry=FAST_RETRY)
    with UsageLedger() as ledger, pytest.raises(BackendUnavailableError) as caught:
        await backend.generate_one(Request.chat(("user", "hi"), max_tokens=4))
    assert caught.value.attempts == 3 and ledger.events["retry"] == 2
    assert url in str(caught.value) and "after 3 attempts" in str(caught.value)


async def test_server_killed_mid_run_is_retried_then_reported_clearly():
    server = LlamaServer()
    backend = create_backend(f"openai:{server.base_url}#smollm2", retry=FAST_RETRY)
    try:
        assert (await backend.generate_one(Request.chat(("user", "hi"), max_tokens=4))).choices
        server.stop()
        with UsageLedger() as ledger, pytest.raises(BackendUnavailableError) as caught:
            await backend.generate_one(Request.chat(("user", "hi again"), max_tokens=4))
    finally:
        server.stop()
    assert ledger.events["retry"] == 2
    assert "cannot reach" in str(caught.value) and server.base_url in str(caught.value)


async def test_secret_api_key_never_appears_in_errors_or_repr(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret-value")
    backend = create_backend(f"openai:http://127.0.0.1:{free_port()}/v1#m", retry=RetryPolicy(max_attempts=1))
    with pytest.raises(BackendUnavailableError) as caught:
        await backend.generate_one(Request.chat(("user", "hi"), max_tokens=4))
    assert "sk-very-secret" not in str(caught.value) and "sk-very-secret" not in repr(backend)


async def test_one_greedy_request_means_one_distribution_in_process_and_through_the_server(backend, llama_backend):
    # llama.cpp's server applies top_k 40, min_p 0.05 and a repeat penalty of 1.1 unless told otherwise; counting
    # repeats tokens, so a repeat penalty changes the text. Both sides get the same chat (a system message: the
    # server's generic ChatML handler leaves out the default system message the model's own template adds)
    request = Request.chat(("system", "You are terse."), ("user", "Count from 1 to 30, separated by commas."),
                           max_tokens=60, temperature=0.0)  # fmt: skip
    in_process = (await llama_backend.generate_one(request)).text
    served = (await backend.generate_one(request)).text
    assert served == in_process and len(in_process) > 40


async def test_a_stop_pattern_closes_the_stream_and_the_server_stops_decoding(llama_server):
    spec = f"openai:{llama_server.base_url}#smollm2"
    request = Request.chat(("user", "Count from 1 to 100, separated by commas."), max_tokens=200, stop_pattern=r"\b5\b")
    streamed, plain = (create_backend(spec, structured_outputs="llamacpp", stream_stop=on) for on in (True, False))
    with UsageLedger() as ledger:
        early = await streamed.generate_one(request)
    full = await plain.generate_one(request)  # decodes on, then is cut at the same place afterwards
    assert early.text == full.text and early.text.endswith("5") and early.choices[0].finish_reason == "stop"
    assert 0 < early.usage.completion_tokens < full.usage.completion_tokens  # fewer tokens were decoded
    # llama_cpp.server sends no usage in a stream: the chunks are counted, the prompt estimated, and said so
    assert ledger.events["usage_estimated"] == 1 and ledger.prompt_tokens == streamed.count_prompt_tokens(request)
    log = os.pread(llama_server.log.fileno(), 1 << 20, 0)  # read without moving the server's write offset
    assert b"Disconnected from client" in log  # the server noticed the closed stream and stopped
