"""BoT as in the paper and its reference code: growth to the limits, leaf-wise on the deepest level,
distinct children, best-first by default, and unreadable analyses that do not end the run."""

from __future__ import annotations

import json

from thoughtgraph.backends import Capabilities
from thoughtgraph.backends.scripted import ScriptedBackend, ScriptRule
from thoughtgraph.reasoning import solve
from thoughtgraph.reasoning.bot import BoTConfig, next_to_grow
from thoughtgraph.reasoning.context import RunContext
from thoughtgraph.reasoning.graph import ROOT

NO_ERROR = json.dumps({"bad_steps": [], "analysis": "all steps are right", "advice": "none"})


def steps_until(depth: int) -> ScriptedBackend:
    """Two distinct ordinary steps at every depth below ``depth``; the answer at ``depth``."""
    rules = [ScriptRule(f"Write step {k}\\.", [f"left {k}", f"right {k}"], cycle=True) for k in range(1, depth)]
    rules.append(ScriptRule(f"Write step {depth}\\.", ["The answer is 9.", "So the answer is 9."], cycle=True))
    return ScriptedBackend([ScriptRule("You grade reasoning", ["0.5"]), ScriptRule("You check", [NO_ERROR]), *rules])


def test_every_policy_grows_until_the_answer_at_step_five():
    for policy in ("bfs", "dfs", "leaf_best"):
        solution = solve(
            "q?", "bot", steps_until(5), iterations=1, trees=1, max_sinks=1, policies=(policy,), max_depth=30
        )
        assert solution.answer == "9", policy
        assert max(node.depth for node in solution.graph.nodes.values()) == 5


def test_bfs_expands_a_whole_binary_level_before_the_next():
    # 1 + 2 + 4 + 8 expansions reach the four levels above depth 5, then the first depth-4 node's children
    # end the tree (max_sinks=1): 16 expansions, each one writer call (n=2) and two judge calls
    solution = solve("q?", "bot", steps_until(5), iterations=1, trees=1, max_sinks=1, policies=("bfs",))
    writer_calls = solution.usage["calls"] - 1  # minus the one analysis
    assert writer_calls == 16 * 3


def test_leaf_wise_growth_takes_the_best_node_on_the_deepest_level():
    context = RunContext("q", ScriptedBackend(default="x"), context_budget())
    shallow = context.add_thought(ROOT, "shallow", score=0.9)
    middle = context.add_thought(ROOT, "middle", score=0.2)
    deep_low = context.add_thought(middle.id, "deep low", score=0.1)
    deep_high = context.add_thought(middle.id, "deep high", score=0.3)
    open_nodes = [shallow.id, deep_low.id, deep_high.id]
    assert next_to_grow(context.graph, open_nodes, "leaf_best") == deep_high.id  # not the 0.9 one above
    assert next_to_grow(context.graph, open_nodes, "dfs") == deep_high.id  # the newest
    assert next_to_grow(context.graph, open_nodes, "bfs") == shallow.id  # the oldest


def context_budget():
    from thoughtgraph.agents.runtime import Budget

    return Budget()


def test_the_children_of_a_node_are_distinct_thoughts():
    backend = ScriptedBackend(
        [
            ScriptRule("You grade reasoning", ["0.5"]),
            ScriptRule("You check", [NO_ERROR]),
            ScriptRule("Write step 1\\.", ["Add 2 and 2.", "Add  2 and 2.", "The answer is 4."]),
            ScriptRule("Write step 2\\.", ["The answer is 4."]),
        ]
    )
    solution = solve("q?", "bot", backend, iterations=1, trees=1, max_sinks=1, max_expansions=1)
    children = [n.text for n in solution.graph.nodes.values() if n.depth == 1]
    assert children == ["Add 2 and 2.", "The answer is 4."]  # the whitespace variant was a repeat
    writer = [c for c in backend.calls if "Write step" in c.messages[-1].content]
    assert [c.n for c in writer] == [2, 1]
    assert solution.usage["events"]["repeated_thought"] == 1


def test_best_first_is_the_default_aggregation():
    # tree chains: A = 0.9 + 0.1 (sum 1.0), B = 0.4 + 0.8 (sum 1.2); greedy would take A's first step
    # then B's second; best-first takes chain B whole
    assert BoTConfig().aggregation == "best_first"
    backend = ScriptedBackend(
        [
            ScriptRule("You grade[\\s\\S]*Step 1: A1[\\s\\S]*Score of step 2", ["0.1"]),
            ScriptRule("You grade[\\s\\S]*Step 1: B1[\\s\\S]*Score of step 2", ["0.8"]),
            ScriptRule("You grade[\\s\\S]*Step 1: A1", ["0.9"]),
            ScriptRule("You grade[\\s\\S]*Step 1: B1", ["0.4"]),
            ScriptRule("You check", [NO_ERROR]),
            ScriptRule("Step 1: A1[\\s\\S]*Write step 2", ["A2 the answer is 1."]),
            ScriptRule("Step 1: B1[\\s\\S]*Write step 2", ["B2 the answer is 2."]),
            ScriptRule("Write step 1", ["A1", "B1"], cycle=True),
        ]
    )
    solution = solve("q?", "bot", backend, iterations=1, trees=1, branching=2, max_sinks=2, policies=("bfs",))
    chosen = [solution.graph.nodes[i].text for i in solution.graph.chosen]
    assert chosen[0] == "B1" and chosen[1].startswith("B2")
    assert solution.answer == "2"


def test_an_unreadable_analysis_is_counted_and_the_iterations_go_on():
    class FreeText(ScriptedBackend):
        capabilities = Capabilities(logprobs=True, constraints=frozenset({"regex"}))

    backend = FreeText(
        [
            ScriptRule("You grade reasoning", ["0.5"]),
            ScriptRule("You check", ["Hmm, interesting problem."]),
            ScriptRule("Write step", ["The answer is 4.", "So the answer is 4."]),
        ]
    )
    solution = solve("q?", "bot", backend, iterations=3, trees=1, max_sinks=1)
    analyses = [c for c in backend.calls if c.messages[0].content.startswith("You check")]
    assert len(analyses) == 3  # not stopped after the first as if it had said "no error"
    assert solution.usage["events"]["parse_failure"] == 3


def test_free_text_analyses_are_read():
    from thoughtgraph.reasoning.steps import parse_analysis

    assert parse_analysis('```json\n{"bad_steps": [2], "analysis": "x", "advice": "y"}\n```').bad_steps == [2]
    assert parse_analysis("Step 2 is wrong: 3 + 4 is 7.").bad_steps == [2]
    assert parse_analysis("The error is in step 3.").bad_steps == [3]
    assert parse_analysis("No errors.").finds_no_error
    unread = parse_analysis("Interesting.")
    assert not unread.understood and not unread.finds_no_error and not unread.finds_error


def test_analysis_json_is_read_bare_fenced_or_embedded_and_its_text_kept():
    from thoughtgraph.reasoning.steps import parse_analysis

    bare = parse_analysis('{"bad_steps": [1, "3", "x"], "analysis": "step 1 adds wrong", "advice": "recompute"}')
    assert bare.bad_steps == [1, 3] and bare.understood  # "x" is not a step index
    assert bare.text == "step 1 adds wrong recompute"
    embedded = parse_analysis('My verdict: {"bad_steps": [], "analysis": "fine"} as asked.')
    assert embedded.bad_steps == [] and embedded.text == "fine" and embedded.finds_no_error
    fenced = parse_analysis('Here:\n```json\n{"bad_steps": [2]}\n```\nand {"not json"')
    assert fenced.bad_steps == [2] and fenced.text == ""
    # an object whose bad_steps is not a list is not a JSON analysis; the free-text reading takes "bad_steps": 2
    loose = parse_analysis('{"bad_steps": 2}')
    assert loose.bad_steps == [2] and loose.text == '{"bad_steps": 2}'
