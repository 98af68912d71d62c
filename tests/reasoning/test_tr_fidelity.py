"""Thought Rollback as in the reference code: bad steps tried in order until the limits allow one, the
experience riding on the rollback edge to the regrown branch only, and no identical analysis twice."""

from __future__ import annotations

import json

import pytest

from thoughtgraph.backends.scripted import ScriptedBackend, ScriptRule
from thoughtgraph.reasoning import solve
from thoughtgraph.reasoning.graph import ROOT
from thoughtgraph.reasoning.tr import ThoughtRollbackConfig

NO_ERROR = json.dumps({"bad_steps": [], "analysis": "all right", "advice": "none"})


def analysis(*bad: int, text: str) -> str:
    return json.dumps({"bad_steps": list(bad), "analysis": text, "advice": "redo"})


def scripted_run():
    backend = ScriptedBackend(
        [
            ScriptRule("Write step", ["a1", "b1", "b2", "c2", "The answer is 3."]),
            ScriptRule("Step 1: a1", [analysis(1, text="MARK-A")]),
            ScriptRule("Step 2: b2", [analysis(1, 2, text="MARK-B")]),
        ],
        default=NO_ERROR,
    )
    # max_incoming=1: after a1 rolls back to the question, the question takes no second rollback
    solution = solve("q?", "tr", backend, max_solutions=1, max_incoming=1)
    return solution, backend, {n.text: n for n in solution.graph.nodes.values()}


def test_bad_steps_are_tried_in_order_until_the_limits_allow_one():
    solution, _, node = scripted_run()
    edges = [(e.source, e.target) for e in solution.graph.rollbacks()]
    # b2 names steps 1 and 2: step 1 would roll back to the question (full), so step 2 rolls back to b1
    assert edges == [(node["a1"].id, ROOT), (node["b2"].id, node["b1"].id)]
    assert solution.usage["events"]["rollback_refused_by_limits"] == 1
    assert solution.answer == "3"


def test_only_the_branch_regrown_from_a_rollback_inherits_its_experience():
    _, backend, node = scripted_run()
    assert node["b1"].metadata["experiences"] == [0]  # the question's next child after a1's rollback
    assert node["c2"].metadata["experiences"] == [1]  # b1's next child after b2's rollback
    assert "experiences" not in node["b2"].metadata  # grown from b1 before the rollback to b1
    writes = {c.messages[-1].content.split("Write step")[0]: c for c in backend.calls if "Write step" in str(c)}
    b2_prompt = next(p for p in writes if "Step 1: b1" in p and "Step 2" not in p and "MARK-B" not in p)
    assert "MARK-A" in b2_prompt  # b2 is below b1, which carries a1's experience
    answer_prompt = next(p for p in writes if "Step 2: c2" in p)
    assert "MARK-A" in answer_prompt and "MARK-B" in answer_prompt


def test_a_rolled_back_to_thought_is_grown_at_once_not_analysed_again():
    _, backend, _ = scripted_run()
    analysed = [c.messages[-1].content for c in backend.calls if c.messages[0].content.startswith("You check")]
    only_b1 = [p for p in analysed if "Step 1: b1" in p and "Step 2" not in p]
    assert len(only_b1) == 1  # analysed once on the way down; after b2 rolled back to it, grown directly


def test_limit_fields_have_the_reference_meanings_and_defaults():
    config = ThoughtRollbackConfig()
    assert (config.max_outgoing, config.max_incoming) == (1, 2)
    assert (config.max_into_target_from_chain, config.max_chain_rollbacks) == (2, 3)
    with pytest.raises(ValueError, match="max_chain_rollbacks must be >= 0"):
        ThoughtRollbackConfig(max_chain_rollbacks=-1)


def limits_on_a_chain(**config):
    """The question -> a -> b -> c, plus d below a and e below the question, with the given limits (others 9)."""
    from thoughtgraph.agents.runtime import Budget
    from thoughtgraph.reasoning.context import RunContext
    from thoughtgraph.reasoning.tr import LIMITS, RollbackLimits

    context = RunContext("q", ScriptedBackend(default="x"), Budget())
    a = context.add_thought(ROOT, "a").id
    b = context.add_thought(a, "b").id
    c = context.add_thought(b, "c").id
    d = context.add_thought(a, "d").id
    e = context.add_thought(ROOT, "e").id
    settings = ThoughtRollbackConfig(**{**dict.fromkeys(LIMITS, 9), **config})
    return context.graph, RollbackLimits(context, settings), (a, b, c, d, e)


def test_max_outgoing_counts_rollbacks_leaving_one_thought():
    graph, limits, (a, b, c, _d, _e) = limits_on_a_chain(max_outgoing=1)
    assert limits.allows(c, a)
    graph.add_rollback(c, ROOT)
    assert not limits.can_leave(c) and not limits.allows(c, a)
    assert limits.can_leave(b) and limits.allows(b, a)


def test_max_incoming_counts_rollbacks_arriving_at_one_thought():
    graph, limits, (a, b, c, d, e) = limits_on_a_chain(max_incoming=1)
    graph.add_rollback(e, a)  # from another branch
    assert not limits.allows(c, a) and not limits.allows(d, a)
    assert limits.allows(c, b) and limits.allows(c, ROOT)


def test_max_into_target_from_chain_counts_rollbacks_into_one_target_from_between_it_and_the_thought():
    graph, limits, (a, b, c, d, _e) = limits_on_a_chain(max_into_target_from_chain=1)
    graph.add_rollback(b, a)  # b lies between a and c
    assert not limits.allows(c, a)
    assert limits.allows(d, a)  # d's chain from a holds only d: b's rollback is not from it
    assert limits.allows(c, b) and limits.allows(c, ROOT)


def test_max_chain_rollbacks_counts_rollbacks_leaving_thoughts_of_the_chain():
    graph, limits, (a, b, c, d, e) = limits_on_a_chain(max_chain_rollbacks=1)
    graph.add_rollback(a, ROOT)
    assert not limits.can_leave(c) and not limits.can_leave(d) and not limits.allows(c, b)
    assert limits.can_leave(e)  # another chain
    graph2, limits2, (_, _, c2, _, _) = limits_on_a_chain(max_chain_rollbacks=2)
    graph2.add_rollback(graph2.nodes[c2].parent, ROOT)
    assert limits2.can_leave(c2)  # one of two used
