"""The openai backend over several replicas: least-in-flight routing, a dead replica taken out and the
request retried on another, usage saying which replica served what. The replicas are real HTTP servers:
``thoughtgraph serve`` on the scripted double (model ``cot``), which speaks the OpenAI protocol."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.thoughtgraph.test_server import ANSWER, scripted, serving
from thoughtgraph.backends import Request, RetryPolicy, UsageLedger, create_backend

pytestmark = pytest.mark.integration  # real servers as replicas

FAST_RETRY = RetryPolicy(max_attempts=4, initial_backoff_seconds=0.05, max_backoff_seconds=0.1)


def test_least_in_flight_routing_and_revival():
    backend = create_backend("openai:http://a:1/v1, http://b:2/v1#m", revive_seconds=0.2)
    assert backend.replicas == ["http://a:1/v1", "http://b:2/v1"]
    assert backend.pick_replica() == "http://a:1/v1"
    backend.in_flight["http://a:1/v1"] = 2
    assert backend.pick_replica() == "http://b:2/v1"
    backend.mark_down("http://b:2/v1")
    assert backend.pick_replica() == "http://a:1/v1"  # b is out even though a is busier
    backend.mark_down("http://a:1/v1")
    assert backend.pick_replica() == "http://b:2/v1"  # all down: the one back first
    time.sleep(0.25)
    backend.in_flight["http://a:1/v1"] = 0
    assert backend.pick_replica() == "http://a:1/v1"  # revived


def test_requests_spread_over_replicas_and_survive_one_dying():
    first, second = scripted(latency=0.05), scripted(latency=0.05)
    with serving(first) as url_a, serving(second) as url_b:
        backend = create_backend(f"openai:{url_a},{url_b}#cot", retry=FAST_RETRY, logprobs=False)
        request = Request.chat(("user", "What is 6 times 7?"), max_tokens=20)

        async def run(count: int) -> list:
            return await asyncio.gather(*(backend.generate_one(request) for _ in range(count)))

        with UsageLedger() as ledger:
            results = asyncio.run(run(8))
        assert [r.text for r in results] == ["42"] * 8
        assert ledger.events[f"replica:{url_a}"] > 0 and ledger.events[f"replica:{url_b}"] > 0
        assert ledger.events[f"replica:{url_a}"] + ledger.events[f"replica:{url_b}"] == 8
    # the second server is still up in the next block; the first is gone
    with serving(second) as url_b:
        dead = url_a  # its port is closed now
        backend = create_backend(f"openai:{dead},{url_b}#cot", retry=FAST_RETRY, logprobs=False)
        with UsageLedger() as ledger:
            results = asyncio.run(run(6))
        assert [r.text for r in results] == ["42"] * 6  # nothing lost
        assert ledger.events[f"replica_down:{dead}"] >= 1 and ledger.events[f"replica:{url_b}"] == 6
        assert ANSWER  # the scripted chain behind each reply states "The answer is 42."
