"""Thought Rollback and Tree of Thoughts at their stopping rules, worked out by hand with the scripted double:
the step and sink bounds stop TR exactly at their limits, a finished ToT state is not expanded, and the answer's
chain is the chosen path."""

import json

from thoughtgraph.backends.scripted import ScriptedBackend, ScriptRule
from thoughtgraph.reasoning.api import solve
from thoughtgraph.reasoning.tr import ThoughtRollbackConfig

NO_ERROR = json.dumps({"bad_steps": [], "analysis": "all right", "advice": "none"})
STEP_ONE = json.dumps({"bad_steps": [1], "analysis": "step 1 is wrong", "advice": "redo"})
WRITER = "You solve problems one step at a time"


def writer_calls(backend):
    return [c for c in backend.calls if c.messages[0].content.startswith(WRITER)]


def test_the_step_bound_stops_the_run_at_exactly_max_steps():
    backend = ScriptedBackend([ScriptRule("You check", [NO_ERROR]), ScriptRule(WRITER, ["Working."])])
    solution = solve("q?", "tr", backend, max_steps=5, max_depth=100)
    assert len(writer_calls(backend)) == 5 and solution.answer is None and solution.reasoning == ""


def test_the_sink_bound_stops_the_run_at_exactly_max_sinks():
    # every child is a sink (max_depth 2: the root and one step); each sink's analysis rolls back to the root,
    # which grows again: the run stops at the second sink although the root is still growable
    backend = ScriptedBackend([ScriptRule("You check", [STEP_ONE]), ScriptRule(WRITER, ["Working."])])
    solve("q?", "tr", backend, max_sinks=2, max_depth=2, max_incoming=10, max_chain_rollbacks=10)
    assert len(writer_calls(backend)) == 2


def test_the_answer_comes_with_its_chain_and_the_votes():
    backend = ScriptedBackend(
        [ScriptRule("You check", [NO_ERROR]), ScriptRule(WRITER, ["Half of 48 is 24.", "The answer is 72."])]
    )
    solution = solve("q?", "tr", backend, max_solutions=1)
    assert solution.answer == "72" and solution.candidates == {"72": 1}
    assert solution.reasoning == "Half of 48 is 24.\nThe answer is 72."
    texts = [solution.graph.nodes[i].text for i in solution.graph.chosen]
    assert texts == ["Half of 48 is 24.", "The answer is 72."]


def test_tr_worst_case_calls_by_hand():
    # per step: the writer, the analysis before it, one analysis that rolls back instead of writing (3 x 7);
    # one more analysis per sink, solutions (2) and chains at the depth limit (3) alike
    assert ThoughtRollbackConfig(max_steps=7, max_solutions=2, max_sinks=3).worst_case_calls() == 3 * 7 + 2 + 3


# -- Tree of Thoughts (same shape of checks: stopping, requests, the kept states) --------------------------


def test_tot_expands_no_state_that_already_states_its_answer():
    backend = ScriptedBackend(
        [
            ScriptRule("You grade reasoning", ["0.5"]),
            ScriptRule("Write step 1\\.", ["The answer is 6.", "Add 2 and 4."]),
            ScriptRule("Write step 2\\.", ["2 + 4 = 6, so the answer is 6.", "Still adding."]),
        ]
    )
    solve("What is 2 + 4?", "tot", backend, proposals=2, beam=2, max_depth=2)
    proposals = [c for c in backend.calls if c.messages[0].content.startswith(WRITER)]
    assert len(proposals) == 2  # the root, then "Add 2 and 4." only: "The answer is 6." is a finished state
    assert all("What is 2 + 4?" in c.messages[-1].content for c in backend.calls)  # proposer and judge alike


def test_tot_words_valuer_reads_a_word_with_its_full_stop_and_keeps_scored_states_first():
    from thoughtgraph.agents.runtime import Budget
    from thoughtgraph.reasoning.context import RunContext
    from thoughtgraph.reasoning.tot import ToTConfig, keep_best, word_valuer

    context = RunContext("q", ScriptedBackend(default="x"), Budget())
    config = ToTConfig(value_mode="words")
    values = dict(config.value_words)
    assert word_valuer(context, config).parse(" Sure. ") == values["sure"]
    unscored = context.add_thought(0, "a")
    scored = context.add_thought(0, "b", score=0.5)
    assert keep_best(context, [unscored.id, scored.id], 1) == [scored.id]  # no score counts as 0
