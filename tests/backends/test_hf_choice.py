"""Choice constraints on the hf backend: options scored by likelihood, picked by hand-checkable rules."""

import asyncio
import math

import pytest

from thoughtgraph.agents.runtime import Budget
from thoughtgraph.backends import Constraint, Request
from thoughtgraph.backends.hf_choice import choice_result_parts, pick_options
from thoughtgraph.reasoning.rsim import load_strategies, planner_agent, read_strategy


def choice_request(*options, **settings):
    return Request.chat(("user", "Pick."), constraint=Constraint.one_of(*options), max_tokens=8, **settings)


def test_greedy_takes_the_best_summed_score_and_the_first_on_a_tie():
    request = choice_request("a", "b", "c")
    assert pick_options(request, [-3.0, -1.0, -2.0], seeds=[0]) == [1]
    assert pick_options(request, [-1.0, -1.0, -2.0], seeds=[0, 1]) == [0, 0]


def test_sampling_follows_the_softmax_of_the_scores_at_the_temperature():
    request = choice_request("a", "b", temperature=1.0)
    # p(b) = 1 / (1 + e^-1) = 0.731 by hand; 2000 draws put it within 0.04 (4 standard errors of 0.0099)
    picks = pick_options(request, [-1.0, 0.0], seeds=list(range(2000)))
    assert abs(picks.count(1) / 2000 - 1 / (1 + math.exp(-1))) < 0.04
    # an option 50 nats behind is never drawn; top_p 0.5 keeps only the likelier of two
    assert set(pick_options(request, [-50.0, 0.0], seeds=list(range(200)))) == {1}
    cut = choice_request("a", "b", temperature=1.0, top_p=0.5)
    assert set(pick_options(cut, [-1.0, 0.0], seeds=list(range(200)))) == {1}


def test_choices_sum_token_scores_and_report_the_picked_options_tokens():
    tokens = {"yes": [5], "no way": [7, 8]}
    scores = {5: -2.0, 7: -0.5, 8: -0.25}  # "no way" sums to -0.75 and beats "yes" at -2.0
    request = choice_request("yes", "no way", logprobs=True)
    [choice] = choice_result_parts(
        request, tokens_of=tokens.__getitem__, scorer=lambda ids: [[scores[t] for t in o] for o in ids],
        seeds=[0], piece=lambda token: f"<{token}>",
    )  # fmt: skip
    assert (choice.text, choice.completion_tokens, choice.finish_reason) == ("no way", 2, "stop")
    assert choice.tokens == ["<7>", "<8>"] and choice.logprobs == [-0.5, -0.25]


@pytest.mark.integration
async def test_option_scores_equal_each_option_scored_alone(hf_backend):
    import torch

    request = choice_request("compute", "decompose", "verify", logprobs=True)
    prompt = hf_backend.prompt_ids(request)
    result = await hf_backend.generate_one(request)
    alone = {}
    for option in request.constraint.choices:
        ids = hf_backend.tokenizer(option, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logits = hf_backend.model(input_ids=torch.tensor([prompt + ids])).logits[0].float()
        steps = torch.log_softmax(logits, dim=-1)
        alone[option] = sum(float(steps[len(prompt) - 1 + k, t]) for k, t in enumerate(ids))
    best = max(alone, key=alone.__getitem__)
    assert result.text == best
    assert sum(result.choices[0].logprobs) == pytest.approx(alone[best], abs=1e-3)
    assert result.usage.prompt_tokens == len(prompt)


@pytest.mark.integration
async def test_choice_and_free_requests_in_one_call_come_back_in_order(hf_backend):
    free = Request.chat(("user", "Name a fruit."), max_tokens=6)
    chosen = choice_request("apple", "pear")
    results = await hf_backend.generate([free, chosen, free])
    assert results[1].text in {"apple", "pear"}
    assert results[0].text == results[2].text and results[0].text not in {"apple", "pear"}


@pytest.mark.integration
async def test_the_rsim_planner_on_hf_always_names_a_strategy(hf_backend):
    """SmolLM2 named no strategy in 100 free replies; under the choice constraint every reply is one."""
    names = [name for name, _ in load_strategies()]
    agent = planner_agent(hf_backend, Budget(), names)
    questions = ["What is 17 + 25?", "A shop sells 3 pens for $2. How much do 12 pens cost?"]
    replies = await asyncio.gather(*(agent.run(question=q, steps=[], names=", ".join(names)) for q in questions))
    assert all(read_strategy(reply.texts[0], names) == reply.texts[0] for reply in replies)
