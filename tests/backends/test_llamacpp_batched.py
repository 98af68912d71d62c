"""The batched llama.cpp engine on the real embedded model: mixed requests decoded together, a newcomer joining
a running batch, prefix sharing counted exactly, the deterministic engine unaffected by a busy batch, and a
closed engine failing its requests with a clear error."""

import asyncio
import json

import pytest

from thoughtgraph.backends import BackendError, Constraint, Request

pytestmark = pytest.mark.integration


def common_prefix(left: list[int], right: list[int]) -> int:
    count = 0
    while count < min(len(left), len(right)) and left[count] == right[count]:
        count += 1
    return count


async def test_mixed_requests_in_one_batch_come_back_well_formed(llama_backend):
    engine = llama_backend.engine
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    requests = [
        Request.chat(("user", "Name three colours."), max_tokens=30, logprobs=True, temperature=0.0),
        Request(prompt="1, 2, 3, 4, 5, 6,", max_tokens=40, stop=(" 9",), temperature=0.0),
        Request.chat(("user", "Give a JSON object with an age."), max_tokens=40, constraint=Constraint.schema(schema)),
        Request.chat(("user", "Is ice cold? yes or no"), max_tokens=4, constraint=Constraint.one_of("yes", "no")),
        Request.chat(("user", "Write about the sea."), n=3, temperature=1.0, seed=5, max_tokens=12, logprobs=True),
        Request(prompt="Once upon a time", max_tokens=3),
        Request(prompt="10, 11, 12, 13,", max_tokens=40, stop_pattern=r"\b16\b", temperature=0.0),
    ]
    calls_before = len(engine.batch_rows)
    greedy, counting, as_json, yes_no, sampled, short, pattern = await llama_backend.generate(requests)
    assert max(engine.batch_rows[calls_before:]) >= 7  # several sequences shared decode calls
    assert len(greedy.choices[0].logprobs) == len(greedy.choices[0].tokens) == greedy.usage.completion_tokens
    assert all(lp <= 0 for lp in greedy.choices[0].logprobs)
    assert counting.choices[0].finish_reason == "stop" and " 9" not in counting.text and "8" in counting.text
    assert isinstance(json.loads(as_json.text)["age"], int)
    assert yes_no.text in ("yes", "no")
    assert len(sampled.choices) == 3 and len({c.text for c in sampled.choices}) > 1
    assert all(len(c.logprobs) == len(c.tokens) > 0 for c in sampled.choices)
    assert sampled.usage.completion_tokens == sum(c.completion_tokens for c in sampled.choices)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 3
    assert pattern.choices[0].finish_reason == "stop" and pattern.text.endswith("16") and "17" not in pattern.text


async def test_a_request_arriving_while_others_decode_joins_without_waiting(llama_backend):
    engine = llama_backend.engine
    long = asyncio.create_task(
        llama_backend.generate_one(
            Request.chat(("user", "Tell a long story."), max_tokens=300, min_tokens=300, temperature=0.0)
        )
    )
    start = engine.decode_calls
    while engine.decode_calls < start + 10:  # the long request is decoding
        await asyncio.sleep(0.01)
    calls_before = len(engine.batch_rows)
    # a newcomer with a long prompt: evaluated in chunks, the long request decoding beside every chunk
    notes = " ".join(f"Note {i}: the shop opens at {i} and closes at {i + 8}." for i in range(30))
    short = Request.chat(("user", f"{notes} Say hi."), max_tokens=5, temperature=0.0)
    prompt_tokens = len(llama_backend.prompt_tokens(short))
    assert prompt_tokens > 3 * engine.chunk_tokens
    result = await llama_backend.generate_one(short)
    assert not long.done()  # the newcomer finished first: it did not queue behind 300 tokens
    shared_calls = engine.batch_rows[calls_before:]
    assert result.usage.completion_tokens <= 5 and max(shared_calls) == 2
    # every call had the long request's token in it: as many calls as prompt chunks plus decoded tokens
    chunks = -(-(prompt_tokens - result.usage.cached_prompt_tokens) // engine.chunk_tokens)
    assert shared_calls.count(2) >= chunks + result.usage.completion_tokens - 1
    assert (await long).usage.completion_tokens == 300


async def test_a_newcomer_takes_the_lowest_free_stream_and_rows_go_in_stream_order(llama_backend):
    # llama.cpp decodes one sub-batch per run of consecutive, increasing sequence ids: scattered ids or rows out
    # of order cost one sub-batch per row, so running sequences must sit in adjacent streams, in order
    engine = llama_backend.engine
    calls: list[list[int]] = []
    decode = engine._decode

    def recording(batch):
        calls.append([batch.seq_id[i][0] for i in range(batch.n_tokens)])
        decode(batch)

    engine._decode = recording
    try:
        while engine._running or engine._waiting:  # another test's requests have left the engine
            await asyncio.sleep(0.01)
        first = Request(prompt="Quokka list one: red, green,", max_tokens=3, min_tokens=3)
        long = [Request(prompt=f"Quokka story {i}: once", max_tokens=120, min_tokens=120) for i in (2, 3)]
        tasks = [asyncio.create_task(llama_backend.generate_one(r)) for r in (first, *long)]
        await tasks[0]  # it held stream 0 (the three took streams 0, 1 and 2), which is free again
        assert {s.seq_id for s in engine._running} == {1, 2}
        calls.clear()
        await llama_backend.generate_one(Request(prompt="Quokka list two: one, two,", max_tokens=4, min_tokens=4))
        assert all(not t.done() for t in tasks[1:])
        # the newcomer took stream 0, not one of the five streams no sequence had used
        assert [0, 1, 2] in calls
        assert all(ids == sorted(ids) for ids in calls)
        await asyncio.gather(*tasks)
    finally:
        engine._decode = decode


async def test_cached_prompt_tokens_are_the_shared_token_prefix(llama_backend):
    engine = llama_backend.engine
    # an opening no other test uses, so no stream already holds more than a token or two of it
    problem = "Zebra bakery puzzle: a baker makes 31 loaves, sells 17 and bakes 9 more. How many are there? " * 2
    first = Request(prompt=problem + "First step:", max_tokens=2)
    second = Request(prompt=problem + "Second step:", max_tokens=2)
    # the hand count: the two prompts' token lists agree up to here
    shared = common_prefix(llama_backend.prompt_tokens(first), llama_backend.prompt_tokens(second))
    assert shared > 30
    await llama_backend.generate_one(first)
    result = await llama_backend.generate_one(second)
    assert result.usage.cached_prompt_tokens == shared
    # four at once with a new prefix: the first evaluates it, the other three wait and copy it
    copies = engine.stream_copies
    problem = problem.replace("Zebra", "Yak")
    together = [Request(prompt=problem + f"Step {i} of the plan:", max_tokens=2, temperature=0.0) for i in range(4)]
    tokens = [llama_backend.prompt_tokens(r) for r in together]
    results = await llama_backend.generate(together)
    for i in range(1, 4):
        assert results[i].usage.cached_prompt_tokens == common_prefix(tokens[0], tokens[i])
    assert engine.stream_copies - copies >= 2  # the running leader's stream was copied


async def test_the_deterministic_engine_gives_the_same_seeded_output_alone_and_in_a_busy_batch():
    from thoughtgraph.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend("smollm2", deterministic=True)
    try:
        request = Request.chat(("user", "Describe a storm."), temperature=1.0, seed=11, max_tokens=24, logprobs=True)
        alone = await backend.generate_one(request)
        others = [Request.chat(("user", f"Describe day {i}."), temperature=0.8, max_tokens=12) for i in range(3)]
        busy = await backend.generate([others[0], request, *others[1:]])
        assert busy[1].choices[0].text == alone.choices[0].text
        assert busy[1].choices[0].logprobs == alone.choices[0].logprobs
    finally:
        backend.close()


async def test_closing_the_engine_mid_run_fails_its_requests_with_a_clear_error():
    from thoughtgraph.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend("smollm2", slots=2)
    task = asyncio.create_task(
        backend.generate_one(Request.chat(("user", "Tell a long story."), max_tokens=400, min_tokens=400))
    )
    while backend.engine.decode_calls < 3:
        await asyncio.sleep(0.01)
    await asyncio.to_thread(backend.close)
    with pytest.raises(BackendError, match="closed while the request ran"):
        await task


def test_a_backend_dropped_without_close_stops_its_engine_thread():
    import gc

    from thoughtgraph.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend("smollm2", slots=2)
    thread = backend.engine._thread
    assert thread.is_alive()
    del backend
    gc.collect()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_a_request_left_behind_by_a_closed_event_loop_does_not_hurt_the_next_run():
    from thoughtgraph.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend("smollm2", slots=2)
    story = Request.chat(("user", "Tell a long story."), max_tokens=200, min_tokens=200)

    async def walk_away() -> asyncio.Task:
        task = asyncio.ensure_future(backend.generate_one(story))  # asyncio.run cancels it and closes the loop
        while backend.engine.decode_calls < 3:
            await asyncio.sleep(0.01)
        return task

    try:
        asyncio.run(walk_away())
        # the abandoned request's caller is gone with its loop; the engine goes on serving the next one
        result = asyncio.run(backend.generate_one(Request.chat(("user", "Say hi."), max_tokens=4)))
        assert 0 < result.usage.completion_tokens <= 4
        assert backend.engine._thread.is_alive()
    finally:
        backend.close()


async def test_a_failed_decode_call_fails_the_requests_in_it_and_the_engine_serves_the_next():
    from thoughtgraph.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend("smollm2", slots=2)
    engine = backend.engine
    healthy = engine._decode
    calls = []

    def broken_once(batch):
        calls.append(batch.n_tokens)
        if len(calls) == 3:
            raise BackendError("simulated llama_decode failure")
        healthy(batch)

    engine._decode = broken_once
    try:
        requests = [Request.chat(("user", f"Count to {i}."), max_tokens=20, min_tokens=20) for i in (5, 6)]
        outcomes = await asyncio.gather(*(backend.generate_one(r) for r in requests), return_exceptions=True)
        assert all(isinstance(o, BackendError) and "simulated" in str(o) for o in outcomes)
        assert all(s.owner is None and not s.tokens for s in engine._streams)  # nothing untrusted kept
        after = await backend.generate_one(Request.chat(("user", "Say hi."), max_tokens=4))
        assert 0 < after.usage.completion_tokens <= 4 and after.usage.cached_prompt_tokens == 0
    finally:
        backend.close()
