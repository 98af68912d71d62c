"""rSIM inference with the scripted double: the planner picks a strategy before each step, the reasoner writes
it, the planner is a plug-in on its own backend, invalid choices are counted, and the loop ends where it
should."""

import dataclasses

import pytest

from thoughtgraph.backends.scripted import ScriptedBackend, ScriptRule
from thoughtgraph.reasoning.answers import ANSWER_STATED_PATTERN
from thoughtgraph.reasoning.api import solve_async
from thoughtgraph.reasoning.rsim import RSIMConfig, load_strategies, read_strategy

QUESTION = "Natalia sold 48 clips in April and half as many in May. How many in total?"


def planner_rules(*choices):
    return ScriptRule("You plan how to solve", list(choices))


def reasoner_rules(*steps):
    return ScriptRule("You solve problems one step at a time", list(steps))


async def test_planner_and_reasoner_alternate_until_the_answer():
    backend = ScriptedBackend(
        [
            planner_rules("decompose", "compute", "conclude"),
            reasoner_rules("In May she sold 48 / 2 = 24.", "48 + 24 = 72.", "The answer is 72."),
        ]
    )
    solution = await solve_async(QUESTION, method="rsim", backend=backend)
    assert solution.answer == "72"
    assert (
        solution.reasoning
        == "[decompose] In May she sold 48 / 2 = 24.\n[compute] 48 + 24 = 72.\n[conclude] The answer is 72."
    )
    assert solution.usage["calls"] == 6
    roles = ["plan" if "You plan" in c.messages[0].content else "reason" for c in backend.calls]
    assert roles == ["plan", "reason"] * 3
    # the reasoner gets the chosen strategy's instruction and the steps so far
    third = backend.calls[5].messages[-1].content
    assert "Step 2: 48 + 24 = 72." in third and 'Give the final answer now, in the form "The answer is' in third
    assert backend.calls[0].constraint.kind == "choice" and "conclude" in backend.calls[0].constraint.choices


async def test_a_planner_on_another_backend_is_a_plug_in():
    planner = ScriptedBackend([planner_rules("compute", "conclude")])
    reasoner = ScriptedBackend([reasoner_rules("48 + 24 = 72.", "The answer is 72.")])
    solution = await solve_async(QUESTION, method="rsim", backend=reasoner, planner=planner)
    assert solution.answer == "72"
    assert len(planner.calls) == 2 and len(reasoner.calls) == 2
    assert all("You plan" in c.messages[0].content for c in planner.calls)
    assert solution.usage["calls"] == 4  # both agents count against the run's budget


async def test_an_unreadable_choice_is_counted_and_replaced_by_the_fallback():
    planner = ScriptedBackend([planner_rules("I would VERIFY it.", "hmm, not sure", "conclude")])
    planner.capabilities = dataclasses.replace(planner.capabilities, constraints=frozenset())  # free text only
    reasoner = ScriptedBackend([reasoner_rules("a", "b", "The answer is 7.")])
    solution = await solve_async(QUESTION, method="rsim", backend=reasoner, planner=planner)
    assert solution.reasoning.splitlines()[:2] == ["[verify] a", "[continue] b"]
    assert solution.usage["events"]["invalid_strategy"] == 1


async def test_max_steps_then_one_final_answer_request():
    backend = ScriptedBackend(
        [
            planner_rules("continue"),
            reasoner_rules("Step text without an answer."),
            ScriptRule("final answer", ["72"]),
        ]
    )
    solution = await solve_async(QUESTION, method="rsim", backend=backend, max_steps=2)
    assert solution.answer == "72" and solution.usage["calls"] == 5  # 2 x (plan + reason) + the answer
    assert RSIMConfig(max_steps=2).worst_case_calls() == 5


def test_strategy_files_and_names_are_checked(tmp_path):
    assert [n for n, _ in load_strategies()][:3] == ["decompose", "deep-think", "compute"]
    assert len(load_strategies()) == 9
    assert read_strategy("Let us self-reflect, then verify", ["verify", "self-reflect"]) == "self-reflect"
    assert read_strategy("deep-thinking", ["deep-think"]) is None  # whole names only
    twice = tmp_path / "s.yaml"
    twice.write_text("strategies:\n  - {name: a, prompt: x}\n  - {name: a, prompt: y}\n")
    with pytest.raises(ValueError, match="names a strategy twice"):
        RSIMConfig(strategies_file=str(twice))
    with pytest.raises(ValueError, match="no strategies file"):
        RSIMConfig(strategies_file=str(tmp_path / "none.yaml"))
    with pytest.raises(ValueError, match="fallback_strategy 'wander' is not a strategy"):
        RSIMConfig(fallback_strategy="wander")


async def test_a_rollout_continues_given_steps_with_the_given_strategy_and_records_its_path():
    backend = ScriptedBackend(
        [
            planner_rules("conclude"),
            reasoner_rules("48 + 24 = 72.", "The answer is 72."),
        ]
    )
    solution = await solve_async(
        QUESTION, method="rsim", backend=backend, start_steps=("In May she sold 48 / 2 = 24.",),
        start_strategy="compute", step_tokens=40,
    )  # fmt: skip
    # the first written step uses start_strategy without asking the planner; the planner picks the second
    roles = ["plan" if "You plan" in c.messages[0].content else "reason" for c in backend.calls]
    assert roles == ["reason", "plan", "reason"]
    assert solution.reasoning == (
        "[given] In May she sold 48 / 2 = 24.\n[compute] 48 + 24 = 72.\n[conclude] The answer is 72."
    )
    assert solution.answer == "72" and solution.candidates == {"72": 1}
    first = backend.calls[0]
    assert "Step 1: In May she sold 48 / 2 = 24." in first.messages[-1].content  # the given step is in context
    assert first.max_tokens == 40 and first.stop == ("\nStep", "\n\n")  # one step per call
    # the thought graph: question -> compute -> conclude, and the chosen path ends at the answer
    graph = solution.graph
    texts = {node.id: node.text for node in graph.nodes.values()}
    assert [texts[i] for i in graph.chosen] == ["[conclude] The answer is 72."]
    last = graph.nodes[graph.chosen[0]]
    assert texts[last.parent] == "[compute] 48 + 24 = 72." and graph.nodes[last.parent].parent == 0
    assert last.answer == "72"


async def test_fifteen_steps_fit_the_graphs_recursion_limit_and_then_one_answer_request():
    backend = ScriptedBackend(
        [planner_rules("continue"), reasoner_rules("Still working."), ScriptRule("final answer", ["72"])]
    )
    solution = await solve_async(QUESTION, method="rsim", backend=backend, max_steps=15)
    assert solution.reasoning.count("[continue] Still working.") == 15  # 30 supersteps: over LangGraph's 25
    assert solution.answer == "72" and solution.usage["calls"] == 31
    assert solution.usage["events"]["parse_failure"] == 1  # no step stated an answer
    assert solution.candidates == {"72": 1}


async def test_an_empty_step_is_written_down_as_such():
    backend = ScriptedBackend([planner_rules("compute", "conclude"), reasoner_rules("   ", "The answer is 9.")])
    solution = await solve_async(QUESTION, method="rsim", backend=backend)
    assert solution.reasoning.splitlines() == ["[compute] (empty step)", "[conclude] The answer is 9."]


async def test_each_request_carries_the_question_strategy_names_seeds_and_sampling(tmp_path):
    strategies = tmp_path / "strategies.yaml"
    strategies.write_text(
        "strategies:\n  - {name: add, prompt: Add the numbers.}\n  - {name: finish, prompt: Say you are done.}\n"
    )
    planner = ScriptedBackend([planner_rules("add", "finish")])
    reasoner = ScriptedBackend([reasoner_rules("48 + 24 = 72.", "I am done."), ScriptRule("final answer", ["72"])])
    solution = await solve_async(
        QUESTION, method="rsim", backend=reasoner, planner=planner, strategies_file=str(strategies),
        fallback_strategy="add", conclude_strategy="finish", seed=5, temperature=0.3, planner_temperature=0.6,
        answer_tokens=5, max_steps=4,
    )  # fmt: skip
    # "finish" ends the run although its step states no answer: 2 plans, 2 steps, then the final-answer request
    assert len(planner.calls) == 2 and len(reasoner.calls) == 3
    first_plan = planner.calls[0]
    assert "Reply with one of: add, finish." in first_plan.messages[0].content
    assert QUESTION in first_plan.messages[-1].content
    assert first_plan.constraint.choices == ("add", "finish")
    assert [(c.seed, c.temperature) for c in planner.calls] == [(5, 0.6), (6, 0.6)]  # seed + steps so far
    steps = reasoner.calls[:2]
    assert [(c.seed, c.temperature) for c in steps] == [(1005, 0.3), (1006, 0.3)]
    assert QUESTION in steps[0].messages[-1].content and "Add the numbers." in steps[0].messages[-1].content
    assert all(c.stop_pattern == ANSWER_STATED_PATTERN for c in steps)  # a step stops once it states the answer
    final = reasoner.calls[2]
    assert final.max_tokens == 5 and final.constraint.pattern == RSIMConfig().answer_pattern
    assert final.messages[-2].content == "48 + 24 = 72.\nI am done."  # the chain so far, one step per line
    assert solution.answer == "72" and solution.candidates == {"72": 1}
    assert {"rsim/planner", "rsim/reasoner", "cot/final_answer"} <= set(solution.prompt_versions)


async def test_max_steps_counts_only_the_steps_this_run_writes():
    backend = ScriptedBackend([planner_rules("continue"), reasoner_rules("More."), ScriptRule("final answer", ["1"])])
    solution = await solve_async(QUESTION, method="rsim", backend=backend, start_steps=("a", "b"), max_steps=3)
    assert solution.reasoning.splitlines() == ["[given] a", "[given] b"] + ["[continue] More."] * 3


async def test_no_answer_anywhere_leaves_no_candidate():
    backend = ScriptedBackend([planner_rules("conclude"), reasoner_rules("Hmm."), ScriptRule("final answer", ["?"])])
    backend.capabilities = dataclasses.replace(backend.capabilities, constraints=frozenset())
    solution = await solve_async(QUESTION, method="rsim", backend=backend)
    assert solution.answer is None and solution.candidates == {}
