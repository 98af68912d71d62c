"""Two real ``llama_cpp.server`` replicas behind one openai backend spec; one is killed mid-run and the
run finishes on the other with nothing lost."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import LlamaServer
from thoughtgraph.backends import RetryPolicy, UsageLedger, create_backend
from thoughtgraph.reasoning.api import solve_async

pytestmark = pytest.mark.integration
FAST_RETRY = RetryPolicy(max_attempts=4, initial_backoff_seconds=0.1, max_backoff_seconds=0.3)


@pytest.fixture(scope="module")
def gsm8k_questions(data_dir):
    with (data_dir / "gsm8k" / "test.jsonl").open() as handle:
        return [json.loads(next(handle))["question"] for _ in range(4)]


async def test_a_replica_killed_mid_run_loses_nothing(gsm8k_questions):
    first, second = LlamaServer(), LlamaServer()
    try:
        backend = create_backend(f"openai:{first.base_url},{second.base_url}#smollm2", retry=FAST_RETRY,
                                 structured_outputs="llamacpp")  # fmt: skip
        with UsageLedger() as ledger:
            runs = [asyncio.create_task(solve_async(q, "sc", backend, samples=2, chain_tokens=48, seed=i))
                    for i, q in enumerate(gsm8k_questions[:4])]  # fmt: skip
            while ledger.events[f"replica:{first.base_url}"] == 0:  # the first replica has served a call
                await asyncio.sleep(0.05)
            first.stop()  # killed while the other runs are in flight
            solutions = await asyncio.gather(*runs)
        assert len(solutions) == 4 and all(s.usage["calls"] >= 1 for s in solutions)
        assert all(s.reasoning for s in solutions)  # every run got its chains
        assert ledger.events[f"replica:{second.base_url}"] >= 1
        served = ledger.events[f"replica:{first.base_url}"] + ledger.events[f"replica:{second.base_url}"]
        assert served == ledger.calls  # every call is accounted to the replica that served it
    finally:
        first.stop()
        second.stop()
