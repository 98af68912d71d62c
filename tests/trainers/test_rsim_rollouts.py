"""rSIM's rollout reward and its held-out measurement, with the scripted double (``ScriptedBackend``, a test
double that answers from rules, never a model) as planner and reasoner; rewards worked out by hand from the
definition: correct + 0.2 when a step states the answer - 0.5 for a planner reply that names no strategy."""

from typing import ClassVar

import pytest

from thoughtgraph.backends.scripted import ScriptedBackend, ScriptRule
from thoughtgraph.evals.datasets import Problem
from thoughtgraph.trainers.rsim import RolloutReward, RSIMTrainingArguments, held_out_rollouts


class OverlapCountingBackend(ScriptedBackend):
    """The scripted double, counting how many requests it holds at once (rollouts that overlap)."""

    in_flight = peak = 0

    async def _generate(self, requests):
        self.in_flight += len(requests)
        self.peak = max(self.peak, self.in_flight)
        try:
            return await super()._generate(requests)
        finally:
            self.in_flight -= len(requests)


def reasoner() -> OverlapCountingBackend:
    """Right (7) under ``conclude`` and ``continue``, wrong (8) but stated under ``compute``."""
    return OverlapCountingBackend(
        [
            ScriptRule("Give the final answer now", ["The answer is 7."]),
            ScriptRule("Continue the solution", ["3 + 4 = 7. The answer is 7."]),
            ScriptRule("Do the next calculation", ["3 + 4 = 8. The answer is 8."]),
        ],
        latency_seconds=0.01,
    )


def test_the_planner_reward_rolls_each_choice_out_together_and_penalises_a_reply_naming_none():
    arguments = RSIMTrainingArguments(rollout_steps=2, step_tokens=16)
    frozen = reasoner()
    reward = RolloutReward("planner", arguments, frozen)
    reward.policy = ScriptedBackend(default="compute")  # never asked: every rollout states its answer in step 1
    rewards = reward(
        completions=["conclude", [{"role": "assistant", "content": "compute"}], "no idea"],
        question=["What is 3 + 4?"] * 3, answer=["7"] * 3, dataset=["arith"] * 3,
    )  # fmt: skip
    # conclude: right, stated = 1.2; compute: wrong, stated = 0.2; "no idea": the fallback (continue) is right
    # and stated, less the penalty = 0.7
    assert rewards == pytest.approx([1.2, 0.2, 0.7])
    assert frozen.peak == 3  # the three rollouts were in flight together
    assert reward.policy.calls == []


def test_the_reasoner_reward_continues_after_the_completed_step():
    arguments = RSIMTrainingArguments(rollout_steps=1, step_tokens=16)
    planner = ScriptedBackend(default="conclude")
    reward = RolloutReward("reasoner", arguments, planner)
    reward.policy = reasoner()
    rewards = reward(
        completions=["3 + 4 = 7.", "3 + 4 = 8. The answer is 8."], question=["What is 3 + 4?"] * 2,
        answer=["7"] * 2, dataset=["arith"] * 2,
    )  # fmt: skip
    # the first step states nothing: the planner says conclude, the policy writes "The answer is 7." -> 1.2;
    # the second completion already states a wrong answer -> 0.2 (no further step: a stated answer ends the run)
    assert rewards == pytest.approx([1.2, 0.2])
    assert len(planner.calls) == 1


def test_held_out_rollouts_ask_the_planner_for_the_first_strategy_greedily():
    arguments = RSIMTrainingArguments(rollout_steps=2, step_tokens=16)
    planner = ScriptedBackend([ScriptRule("3 \\+ 4", ["compute"]), ScriptRule("What is 5", ["conclude"])])
    frozen = reasoner()
    frozen.rules.insert(0, ScriptRule("What is 5 \\+ 1", ["The answer is 6."]))
    problems = [
        Problem("p1", "What is 3 + 4?", "7", "What is 3 + 4?"),
        Problem("p2", "What is 5 + 1?", "6", "What is 5 + 1?"),
    ]
    rows = _run(held_out_rollouts(problems, "arith", planner=planner, reasoner=frozen, arguments=arguments))
    assert [(r["id"], r["first_strategy"], r["named"], r["correct"]) for r in rows] == [
        ("p1", "compute", True, False),
        ("p2", "conclude", True, True),
    ]
    assert [r["reward"] for r in rows] == pytest.approx([0.2, 1.2])
    assert rows[0]["strategies"] == ["compute"] and all(r["stated"] for r in rows)
    assert all(call.temperature == 0 for call in planner.calls)


def _run(coroutine):
    import asyncio

    return asyncio.run(coroutine)


def test_a_rollout_that_never_states_its_answer_earns_no_format_bonus():
    arguments = RSIMTrainingArguments(rollout_steps=1, step_tokens=16)
    frozen = ScriptedBackend([ScriptRule("only the final answer", ["7"])], default="3 and 4 make seven")
    reward = RolloutReward("planner", arguments, frozen)
    reward.policy = ScriptedBackend(default="compute")
    # the step states nothing, the answer asked alone is right: 1 for correct, no 0.2 for the form
    assert reward(completions=["compute"], question=["What is 3 + 4?"], answer=["7"], dataset=["arith"]) == [1.0]


class WordTokenizer:
    """Splits a name at its hyphens, one id per piece, from a fixed table (a stand-in for a real tokenizer)."""

    ids: ClassVar = {"de": 3, "compose": 4, "compute": 5, "deep": 3, "-": 6, "think": 7}

    def __call__(self, text, add_special_tokens=False):
        pieces = {"decompose": ["de", "compose"], "deep-think": ["deep", "-", "think"]}.get(text, [text])
        return {"input_ids": [self.ids[p] for p in pieces]}


def test_name_first_sampling_suppresses_every_token_but_the_names_first_ones_at_the_first_position():
    from thoughtgraph.trainers.rsim import name_first_sampling

    kwargs = name_first_sampling(WordTokenizer(), ["decompose", "deep-think", "compute"], vocab_size=9)
    # first tokens: 3 (de, shared by decompose and deep-think) and 5 (compute); the other 7 of 0..8 are suppressed
    assert kwargs == {"begin_suppress_tokens": [0, 1, 2, 4, 6, 7, 8]}


@pytest.mark.integration
def test_sampled_planner_completions_begin_with_a_strategy_name(hf_backend):
    """transformers' generate under ``name_first_sampling``: SmolLM2 named a strategy in 1 of 48 free samples."""
    import torch
    from transformers import GenerationConfig

    from thoughtgraph.prompts import load_prompt
    from thoughtgraph.reasoning.rsim import load_strategies, read_strategy
    from thoughtgraph.trainers.rsim import name_first_sampling

    tokenizer, model = hf_backend.tokenizer, hf_backend.model
    names = [name for name, _ in load_strategies()]
    turns = load_prompt("rsim/planner").render(question="What is 17 + 25?", steps=[], names=", ".join(names))
    text = tokenizer.apply_chat_template([{"role": r, "content": t} for r, t in turns], tokenize=False,
                                         add_generation_prompt=True)  # fmt: skip
    prompt = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    config = GenerationConfig(do_sample=True, temperature=1.0, max_new_tokens=6, num_return_sequences=16,
                              pad_token_id=tokenizer.pad_token_id,
                              **name_first_sampling(tokenizer, names, model.config.vocab_size))  # fmt: skip
    torch.manual_seed(0)
    with torch.inference_mode():
        out = model.generate(**prompt, generation_config=config)
    completions = tokenizer.batch_decode(out[:, prompt["input_ids"].shape[1] :], skip_special_tokens=True)
    firsts = {tokenizer(name, add_special_tokens=False)["input_ids"][0] for name in names}
    assert all(int(token) in firsts for token in out[:, prompt["input_ids"].shape[1]])
    # the later tokens are the model's: 9 of these 16 finish a name ("backtrack:"), others drift ("back-it-down",
    # "converge"), and GRPO's invalid-name penalty is what teaches finishing it
    assert sum(read_strategy(c, names) is not None for c in completions) >= 6


def test_name_first_sampling_with_vllm_generation_is_refused_before_training(tmp_path):
    from pathlib import Path

    from thoughtgraph.trainers.rsim import main

    config = Path(__file__).resolve().parents[2] / "trainers" / "configs" / "rsim_tiny.yaml"
    with pytest.raises(SystemExit, match="planner_names_first restricts transformers' sampling"):
        main(["--config", str(config), "--use_vllm", "true", "--output_dir", str(tmp_path / "out")])
