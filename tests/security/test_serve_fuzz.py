"""Any JSON body sent to ``/v1/chat/completions`` gets a 2xx or a 4xx, never a server error, and quickly
(hypothesis: random JSON, and chat requests whose method options, budgets and standard fields hold random
values). The one 5xx by design is 502 ``backend_error``: the model backend itself failed (here, the scripted
double refusing a constrained request it has no scripted answer for), reported with the usage spent.

The examples are derandomized, so CI runs the same ones every time; a longer random run (3,000 plausible
requests, no failure) found the one bug these caught: BoT with an empty temperature pool was a 500."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import fields

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thoughtgraph.backends.scripted import ScriptedBackend
from thoughtgraph.reasoning.methods import METHODS
from thoughtgraph.server import create_app
from thoughtgraph.server.protocol import BUDGET_FIELDS, STANDARD_FIELDS

pytestmark = pytest.mark.integration  # a real server, fuzzed

APP = create_app(
    ScriptedBackend(default="Step one.\nThe answer is 42.", latency_seconds=0.0),
    max_width=4,
    max_depth=6,
    max_tokens=64,
    max_count=8,
    max_run_calls=12,
    max_run_seconds=5.0,
)
OPTION_NAMES = sorted({f.name for spec in METHODS.values() for f in fields(spec.config)})
SCALARS = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=30)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
SMALL = st.integers(-2, 10) | st.floats(-1, 3) | st.sampled_from(["", "dfs", "score", "words", "majority", "x"])
MESSAGES = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant", "x"]),
                                           "content": st.text(max_size=40) | JSON}), max_size=3)  # fmt: skip
REQUEST = st.fixed_dictionaries(
    {"model": st.sampled_from(list(METHODS)) | st.text(max_size=5), "messages": MESSAGES | JSON},
    optional={
        name: SMALL | JSON for name in [*OPTION_NAMES, *BUDGET_FIELDS, *sorted(STANDARD_FIELDS - {"model", "messages"})]
    },
)


@st.composite
def plausible_request(draw: st.DrawFn) -> dict:
    """A request a real client could send: a method, a question, and a few of that method's own options (or
    budgets, or standard fields) with small or odd values."""
    method = draw(st.sampled_from(list(METHODS)))
    names = [f.name for f in fields(METHODS[method].config) if not f.metadata.get("server_setting")]
    chosen = draw(st.lists(st.sampled_from([*names, *BUDGET_FIELDS, "max_tokens", "temperature", "seed", "stop",
                                            "stream"]), max_size=3, unique=True))  # fmt: skip
    body = {"model": method, "messages": [{"role": "user", "content": "What is 6 times 7?"}]}
    body.update({name: draw(SMALL | st.lists(SMALL, max_size=3)) for name in chosen})
    return body


async def answer(body: bytes) -> tuple[int, str, float]:
    transport = httpx.ASGITransport(app=APP)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        started = time.monotonic()
        reply = await client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
        if reply.headers.get("content-type", "").startswith("text/event-stream"):
            assert '"server_error"' not in reply.text, reply.text[-500:]
        kind = reply.json()["error"]["type"] if reply.status_code >= 400 else ""
        return reply.status_code, kind, time.monotonic() - started


def check(body: bytes) -> None:
    status, kind, seconds = asyncio.run(answer(body))
    assert status < 500 or (status == 502 and kind == "backend_error"), (status, kind, body[:500])
    assert seconds < 10, (seconds, body[:500])


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_any_json_value_is_answered_without_a_server_error(value):
    check(json.dumps(value).encode())


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(REQUEST, st.sampled_from(["What is 6 times 7?", "x"]))
def test_any_chat_request_is_answered_without_a_server_error(request, question):
    if request.get("messages") == []:
        request["messages"] = [{"role": "user", "content": question}]
    check(json.dumps(request).encode())


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(plausible_request())
def test_plausible_requests_with_odd_values_are_answered_without_a_server_error(request):
    check(json.dumps(request).encode())


def test_the_bug_the_fuzz_found_an_empty_bot_pool_is_a_400():
    body = {"model": "bot", "messages": [{"role": "user", "content": "What is 6 times 7?"}]}
    for pool in ({"temperatures": []}, {"top_ps": []}, {"top_ps": [2.0]}):
        status, kind, _ = asyncio.run(answer(json.dumps({**body, **pool}).encode()))
        assert (status, kind) == (400, "invalid_request_error"), pool
