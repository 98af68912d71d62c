"""The hf backend's continuous refill (``refill=True``) on the real embedded model: rows with their own
sampling settings decode together, a newcomer joins a running batch and finished rows leave it, and each
row keeps its own stops, budget, min_tokens and logprobs."""

import asyncio

import pytest

from thoughtgraph.backends import Request

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def refill_backend():
    from thoughtgraph.backends.hf import HFBackend

    backend = HFBackend("smollm2", refill=True)
    yield backend
    backend.close()


async def test_rows_with_their_own_settings_decode_together(refill_backend):
    engine = refill_backend.engine
    greedy = Request.chat(("user", "Name three colours."), max_tokens=10)
    alone = await refill_backend.generate_one(greedy)
    before = len(engine.batch_rows)
    requests = [
        greedy,
        Request.chat(("user", "Write about rain."), max_tokens=10, temperature=1.0, top_p=0.9, seed=4, n=2,
                     logprobs=True),
        Request(prompt="1, 2, 3, 4, 5,", max_tokens=30, stop=(" 9",)),
        Request.chat(("user", "Hi"), max_tokens=6, min_tokens=6),
    ]  # fmt: skip
    with_greedy, sampled, counting, held = await asyncio.gather(*(refill_backend.generate_one(r) for r in requests))
    assert max(engine.batch_rows[before:]) == 5  # five rows in one forward pass
    assert with_greedy.text == alone.text  # the temperature-0 row is greedy inside a sampled batch
    assert len(sampled.choices) == 2 and sampled.choices[0].text != sampled.choices[1].text
    assert all(len(c.logprobs) == len(c.tokens) == c.completion_tokens for c in sampled.choices)
    assert all(lp <= 0 for c in sampled.choices for lp in c.logprobs)
    assert counting.choices[0].finish_reason == "stop" and " 9" not in counting.text and "8" in counting.text
    assert held.usage.completion_tokens == 6


async def test_a_newcomer_joins_a_running_batch_and_finished_rows_leave(refill_backend):
    engine = refill_backend.engine
    long = asyncio.create_task(
        refill_backend.generate_one(Request.chat(("user", "Tell a story."), max_tokens=60, min_tokens=60))
    )
    start = engine.steps
    while engine.steps < start + 5:  # the long request is decoding
        await asyncio.sleep(0.01)
    before = len(engine.batch_rows)
    short = await refill_backend.generate_one(Request.chat(("user", "Say hi."), max_tokens=3, min_tokens=3))
    assert not long.done()  # it did not wait for the long request's 60 tokens
    assert short.usage.completion_tokens == 3
    assert (await long).usage.completion_tokens == 60
    rows = engine.batch_rows[before:]
    assert 2 in rows and rows[-1] == 1  # decoded together, then the short row left the batch


async def test_a_seeded_row_samples_the_same_text_alone_and_beside_others(refill_backend):
    seeded = Request.chat(("user", "Write a short sentence about rain."), max_tokens=12, temperature=1.0, seed=42)
    others = [Request.chat(("user", "Name a colour."), max_tokens=12, temperature=0.5, seed=i) for i in range(2)]
    alone = await refill_backend.generate_one(seeded)
    together = await asyncio.gather(*(refill_backend.generate_one(r) for r in [others[0], seeded, others[1]]))
    assert together[1].text == alone.text


async def test_padding_no_live_row_needs_is_cut_and_the_remaining_row_decodes_as_alone(refill_backend):
    engine = refill_backend.engine
    short_prompt = Request.chat(("user", "Hi"), max_tokens=12)
    alone = await refill_backend.generate_one(short_prompt)
    long_prompt = Request.chat(
        ("user", "Describe, in detail, the history of the bicycle in Europe. " * 4), max_tokens=2
    )
    cut_before = engine.columns_cut
    together = await asyncio.gather(refill_backend.generate_one(short_prompt), refill_backend.generate_one(long_prompt))
    # the long prompt's row left after 2 tokens and the padding only it needed was dropped (how much depends
    # on whether the short row had decoded a step before the long one joined); the short row, still
    # decoding, gives what it gives alone
    assert engine.columns_cut > cut_before
    assert together[0].text == alone.text
