"""rSIM's rollout reward and its held-out measurement, with the scripted double (``ScriptedBackend``, a test
double that answers from rules, never a model) as planner and reasoner; rewards worked out by hand from the
definition: correct + 0.2 when a step states the answer - 0.5 for a planner reply that names no strategy."""

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
