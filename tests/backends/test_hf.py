"""The hf backend: transformers loading the same GGUF, batched generation with logprobs."""

import asyncio

import pytest

from thoughtgraph.backends import Request, UsageLedger

pytestmark = pytest.mark.integration


async def test_concurrent_requests_run_as_one_padded_batch(hf_backend):
    prompts = ["Name a fruit.", "Name a planet in our solar system, please.", "Hi", "Name a colour."]
    requests = [Request.chat(("user", p), max_tokens=8) for p in prompts]
    before = len(hf_backend.batch_sizes)
    with UsageLedger() as ledger:
        results = await asyncio.gather(*(hf_backend.generate_one(r) for r in requests))
    assert hf_backend.batch_sizes[before:] == [4]
    assert all(r.text.strip() for r in results)
    assert [r.usage.prompt_tokens for r in results] == [len(hf_backend.prompt_ids(r)) for r in requests]
    assert ledger.calls == 4


async def test_batched_greedy_output_equals_unbatched_output(hf_backend):
    short = Request.chat(("user", "Hi"), max_tokens=8)
    long = Request.chat(("user", "Tell me about the moon and the stars tonight."), max_tokens=8)
    alone = await hf_backend.generate_one(short)
    together = await asyncio.gather(hf_backend.generate_one(short), hf_backend.generate_one(long))
    assert together[0].text == alone.text  # left padding does not change the answer


async def test_logprobs_and_n_samples(hf_backend):
    result = await hf_backend.generate_one(
        Request.chat(("user", "Write a word."), max_tokens=6, n=2, temperature=1.0, seed=3, logprobs=True)
    )
    assert len(result.choices) == 2
    for choice in result.choices:
        assert len(choice.logprobs) == len(choice.tokens) == choice.completion_tokens
        assert all(lp <= 0.0 for lp in choice.logprobs)


async def test_requests_with_different_sampling_settings_share_one_generate_call(hf_backend):
    prompt = ("user", "Name a fruit.")
    settings = [(0.0, 1.0, None), (0.7, 0.9, 1), (1.3, 0.5, 2), (1.0, 1.0, 3)]
    requests = [Request.chat(prompt, max_tokens=8, temperature=t, top_p=p, seed=s) for t, p, s in settings]
    before = len(hf_backend.generate_calls)
    results = await asyncio.gather(*(hf_backend.generate_one(r) for r in requests))
    assert hf_backend.generate_calls[before:] == [4]  # BoT's trees, each with its own settings, batch
    assert all(r.choices[0].completion_tokens > 0 for r in results)
    greedy_alone = await hf_backend.generate_one(requests[0])
    assert results[0].text == greedy_alone.text  # the temperature-0 row is greedy inside a sampled batch


async def test_a_seeded_request_samples_the_same_text_alone_and_in_a_mixed_batch(hf_backend):
    seeded = Request.chat(("user", "Write a short sentence about rain."), max_tokens=12, temperature=1.0, seed=42)
    others = [Request.chat(("user", "Name a colour."), max_tokens=12, temperature=0.5, top_p=0.8, seed=i)
              for i in range(3)]  # fmt: skip
    alone = await hf_backend.generate_one(seeded)
    together = await asyncio.gather(*(hf_backend.generate_one(r) for r in [others[0], seeded, *others[1:]]))
    assert together[1].text == alone.text
