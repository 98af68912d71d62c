"""The llamacpp backend on the real embedded SmolLM2-135M GGUF, through both engines: the batched one (the
default) and the one-sequence engine of ``deterministic=True``. What only one of them promises is tested on
that one (determinism here; continuous batching in test_llamacpp_batched.py)."""

import json
import re

import pytest

from thoughtgraph.backends import Constraint, Request, UsageLedger

pytestmark = pytest.mark.integration
QUESTION = ("user", "Name three colours.")


@pytest.fixture(scope="module")
def serial_backend():
    from thoughtgraph.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend("smollm2", deterministic=True)
    yield backend
    backend.close()


@pytest.fixture(params=["batched", "one-sequence"])
def any_backend(request, llama_backend, serial_backend):
    return llama_backend if request.param == "batched" else serial_backend


async def test_generates_text_and_counts_tokens_as_the_engine_does(any_backend):
    request = Request.chat(QUESTION, max_tokens=24)
    with UsageLedger() as ledger:
        result = await any_backend.generate_one(request)
    assert result.text.strip()
    assert result.usage.prompt_tokens == len(any_backend.prompt_tokens(request))
    assert 0 < result.usage.completion_tokens <= 24
    assert ledger.calls == 1
    assert ledger.prompt_tokens == result.usage.prompt_tokens
    assert ledger.completion_tokens == result.usage.completion_tokens


async def test_greedy_decoding_is_deterministic(serial_backend):
    request = Request.chat(QUESTION, max_tokens=20, temperature=0.0)
    first, second = await serial_backend.generate([request, request])
    assert first.text == second.text


async def test_seeded_sampling_is_reproducible_and_n_samples_differ(serial_backend):
    request = Request.chat(
        ("user", "Write a short sentence about the sea."), n=3, temperature=1.0, seed=7, max_tokens=20
    )
    first = await serial_backend.generate_one(request)
    second = await serial_backend.generate_one(request)
    assert len(first.choices) == 3
    assert [c.text for c in first.choices] == [c.text for c in second.choices]
    assert len({c.text for c in first.choices}) > 1


async def test_stop_strings_end_the_text_before_the_stop(any_backend):
    request = Request(prompt="1, 2, 3, 4, 5, 6,", max_tokens=40, stop=(" 9",))
    result = await any_backend.generate_one(request)
    choice = result.choices[0]
    assert choice.finish_reason == "stop"
    assert " 9" not in choice.text
    assert "8" in choice.text


async def test_max_tokens_caps_the_completion(any_backend):
    result = await any_backend.generate_one(Request(prompt="Once upon a time", max_tokens=5))
    assert result.choices[0].finish_reason == "length"
    assert result.choices[0].completion_tokens == 5


async def test_logprobs_are_real_nonpositive_and_one_per_token(any_backend):
    result = await any_backend.generate_one(Request.chat(QUESTION, max_tokens=16, logprobs=True))
    choice = result.choices[0]
    assert choice.logprobs and len(choice.logprobs) == len(choice.tokens) == choice.completion_tokens
    assert all(isinstance(lp, float) and lp <= 0.0 for lp in choice.logprobs)
    assert "".join(choice.tokens) == choice.text
    assert any(lp < -1e-3 for lp in choice.logprobs)  # a real distribution, not all certainties


async def test_greedy_tokens_have_the_highest_probability_so_logprobs_are_near_the_top(any_backend):
    # Under greedy decoding each sampled token is the argmax: its probability is at least 1/vocab.
    result = await any_backend.generate_one(Request.chat(QUESTION, max_tokens=12, logprobs=True))
    assert all(lp > -11.0 for lp in result.choices[0].logprobs)


async def test_json_schema_constraint_gives_parseable_json(any_backend):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    result = await any_backend.generate_one(
        Request.chat(("user", "Describe a person as JSON."), max_tokens=64, constraint=Constraint.schema(schema))
    )
    data = json.loads(result.text)
    assert isinstance(data["name"], str) and isinstance(data["age"], int)


async def test_regex_and_choice_constraints_hold(any_backend):
    number = await any_backend.generate_one(
        Request.chat(("user", "What is 7 times 6?"), max_tokens=8, constraint=Constraint.regex(r"-?[0-9]{1,4}"))
    )
    assert re.fullmatch(r"-?[0-9]{1,4}", number.text)
    choice = await any_backend.generate_one(
        Request.chat(("user", "Is fire hot? yes or no"), max_tokens=4, constraint=Constraint.one_of("yes", "no"))
    )
    assert choice.text in ("yes", "no")


async def test_shared_prompt_prefixes_are_served_from_the_kv_cache_in_whole_blocks(serial_backend):
    problem = "Problem: a farmer has 12 cows and buys 7 more, then sells 5. How many cows are left? " * 3
    requests = [Request(prompt=problem + f"Step {i}:", max_tokens=4) for i in range(4)]
    results = await serial_backend.generate(requests)
    shared = len(serial_backend.prompt_tokens(Request(prompt=problem)))
    whole_blocks = shared - shared % serial_backend.prefix_block_tokens
    assert all(r.usage.cached_prompt_tokens == whole_blocks for r in results[1:])
    assert all(r.usage.cached_prompt_tokens < r.usage.prompt_tokens for r in results)


async def test_results_do_not_depend_on_what_ran_before(serial_backend):
    request = Request.chat(("user", "Describe a storm."), temperature=1.0, seed=11, max_tokens=16, logprobs=True)
    alone = await serial_backend.generate_one(request)
    await serial_backend.generate_one(Request.chat(("user", "Describe a calm day."), max_tokens=8))
    after_other = await serial_backend.generate_one(request)
    assert after_other.choices[0].text == alone.choices[0].text
    assert after_other.choices[0].logprobs == alone.choices[0].logprobs


async def test_a_deadline_stops_decoding_at_the_next_token_and_the_tokens_spent_are_recorded(any_backend):
    import asyncio
    import time

    # a long generation, cut by its caller's deadline after two seconds (time for the prompt and some tokens even
    # on a loaded machine)
    request = Request.chat(("user", "Write a long story about a dragon."), max_tokens=2000, temperature=0.0)
    started = time.monotonic()
    with UsageLedger() as ledger:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(2.0):
                await any_backend.generate_one(request)
        await ledger.settle(10.0)
    stopped_after = time.monotonic() - started
    assert stopped_after < 5.0  # 2000 tokens at ~100 tokens/s would take 20 s
    assert ledger.calls == 1
    assert ledger.prompt_tokens == len(any_backend.prompt_tokens(request))
    assert 0 < ledger.completion_tokens < 400
    assert not ledger.pending


async def test_budget_counts_the_exact_prompt_tokens(llama_backend):
    from thoughtgraph.reasoning import solve_async

    request_tokens = llama_backend.count_prompt_tokens(Request.chat(QUESTION))
    assert request_tokens == len(llama_backend.prompt_tokens(Request.chat(QUESTION)))
    solution = await solve_async("Name three colours.", "cot", llama_backend, max_tokens=60)
    assert solution.usage["total_tokens"] <= 60
    # one chain needs its exact prompt (counted by the model's tokenizer) and 64 written tokens: more than 60
    prompt = llama_backend.count_prompt_tokens(solver_request("Name three colours."))
    assert solution.stopped_by == (
        f"max_tokens=60: too small for one chain of thought, which needs 1 call and about {prompt + 64} tokens "
        f"({prompt} prompt + 64 written)"
    )
    roomy = await solve_async("Name three colours.", "cot", llama_backend, max_tokens=prompt + 80)
    assert roomy.usage["calls"] >= 1 and roomy.usage["total_tokens"] <= prompt + 80


def solver_request(question: str) -> Request:
    """The chain-of-thought request the budget is measured against (its prompt, as the method sends it)."""
    from thoughtgraph.agents.runtime import Budget
    from thoughtgraph.reasoning.context import RunContext
    from thoughtgraph.reasoning.cot import solver

    context = RunContext(question, None, Budget(), 0)
    return solver(context, 64).request(question=question)


async def test_a_stop_pattern_ends_decoding_once_the_answer_is_stated(serial_backend, data_dir):
    from thoughtgraph.prompts import load_prompt
    from thoughtgraph.reasoning.answers import ANSWER_STATED_PATTERN

    # GSM8K test problem 0 with the cot prompt: greedy SmolLM2 on the one-sequence engine repeats
    # "The answer is 2800." to its limit
    question = json.loads((data_dir / "gsm8k" / "test.jsonl").read_text().splitlines()[0])["question"]
    ask = load_prompt("cot/solve").render(question=question)
    free = await serial_backend.generate_one(Request.chat(*ask, max_tokens=512))
    stopped = await serial_backend.generate_one(Request.chat(*ask, max_tokens=512, stop_pattern=ANSWER_STATED_PATTERN))
    match = re.search(ANSWER_STATED_PATTERN, free.text)
    assert match is not None  # greedy SmolLM2 states its answer and then goes on
    assert stopped.text == free.text[: match.end()].rstrip()
    assert stopped.usage.completion_tokens < free.usage.completion_tokens
    assert stopped.choices[0].finish_reason == "stop"


async def test_continuing_an_assistant_message_extends_it_in_place(any_backend):
    opened = Request.chat(QUESTION, ("assistant", "Red, green and"), continue_final_message=True, max_tokens=8)
    fresh = Request.chat(QUESTION, max_tokens=8)
    # the prompt is the question's prompt (with the assistant header) followed by the reply so far
    reply_tokens = any_backend._llm.tokenize(b"Red, green and", add_bos=False, special=False)
    assert any_backend.prompt_tokens(opened) == any_backend.prompt_tokens(fresh) + reply_tokens
    result = await any_backend.generate_one(opened)
    assert not result.text.startswith("Red")  # a continuation, not a new reply


async def test_min_tokens_holds_back_stop_strings_and_the_end_of_the_reply(any_backend):
    free = await any_backend.generate_one(Request.chat(("user", "Say hi."), max_tokens=60, stop=("\n",)))
    held = await any_backend.generate_one(
        Request.chat(("user", "Say hi."), max_tokens=60, stop=("\n",), min_tokens=free.usage.completion_tokens + 10)
    )
    assert held.usage.completion_tokens >= free.usage.completion_tokens + 10


async def test_a_prompt_over_the_context_window_is_a_named_error(any_backend):
    from thoughtgraph.backends import InvalidRequestError
    from thoughtgraph.reasoning import solve_async

    question = "Count the words. " + "word " * 6000
    with pytest.raises(InvalidRequestError, match="more than the context window of 4096"):
        await any_backend.generate_one(Request.chat(("user", question), max_tokens=4))
    with pytest.raises(InvalidRequestError, match="shorten it or create the backend with a larger n_ctx"):
        await solve_async(question, "cot", any_backend)


def test_a_spec_sets_threads_slots_and_the_deterministic_engine():
    from thoughtgraph.backends import create_backend

    backend = create_backend("llamacpp:smollm2#threads=1&slots=2")
    assert backend._llm.n_threads == 1 and backend.engine is not None and backend.engine.slots == 2
    backend.close()
    backend = create_backend("llamacpp:smollm2#deterministic=1")
    assert backend.engine.slots == 1 and backend.engine.deterministic and not backend.capabilities.batching
    backend.close()
