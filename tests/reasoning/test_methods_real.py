"""Every method attempts a real GSM8K problem on the embedded model within a small budget."""

import json

import pytest

from thoughtgraph.backends import UsageLedger
from thoughtgraph.reasoning import METHODS, solve_async

pytestmark = pytest.mark.integration

TINY = {name: spec.tiny for name, spec in METHODS.items()}


@pytest.fixture(scope="module")
def gsm8k_question(data_dir):
    with (data_dir / "gsm8k" / "test.jsonl").open() as handle:
        return json.loads(handle.readline())["question"]


@pytest.mark.parametrize("method", list(TINY))
async def test_method_returns_a_well_formed_solution_on_the_real_model(method, llama_backend, gsm8k_question):
    with UsageLedger() as outside:
        solution = await solve_async(gsm8k_question, method, llama_backend, max_calls=20, seed=1, **TINY[method])
    assert solution.method == method
    assert len(solution.graph) >= 1 and solution.graph.question == gsm8k_question
    assert solution.answer is None or isinstance(solution.answer, str)
    assert solution.stopped_by is None or solution.stopped_by.startswith("max_calls=20")
    for key in ("calls", "prompt_tokens", "completion_tokens"):
        assert solution.usage[key] == getattr(outside, key) > 0
    assert solution.usage["calls"] <= 20
    json.dumps(solution.to_dict())  # serialisable, graph included
    assert solution.prompt_versions


@pytest.mark.parametrize("method", ["bot", "gg", "tot"])
async def test_the_default_config_under_a_small_budget_still_answers_on_the_real_model(
    method, llama_backend, gsm8k_question
):
    # found trying the CLI as a new user: bot with 8 calls spent them all on the first trees' opening steps and
    # printed no answer; now the method shrinks and one chain of thought is kept in reserve
    solution = await solve_async(gsm8k_question, method, llama_backend, max_calls=8, seed=1)
    assert solution.usage["calls"] <= 8 and solution.usage["completion_tokens"] > 0
    assert solution.answer is not None and solution.stopped_by.startswith("max_calls=8")
