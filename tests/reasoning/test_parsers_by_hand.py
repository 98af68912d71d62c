"""The small pure pieces the methods share, on inputs chosen to sit on their edges: answer cleaning, analysts'
verdicts, the agents' request settings, experience rendering, node positions and the Mermaid view."""

import pytest

from thoughtgraph.agents.runtime import Budget
from thoughtgraph.backends.scripted import ScriptedBackend
from thoughtgraph.reasoning.answers import clean_answer, stated_answer
from thoughtgraph.reasoning.context import RunContext
from thoughtgraph.reasoning.graph import Experience, ThoughtGraph
from thoughtgraph.reasoning.steps import SCORE_PATTERN, analyst, judge, parse_analysis, thinker


@pytest.mark.parametrize(
    ("stated", "cleaned"),
    [
        ("*$5$*", "5"),  # markdown around maths: both come off
        ("*X*", "X"),  # only markdown is stripped, not letters
        ("\\boxed{5}", "5"),
        ("\\[x^2\\]", "x^2"),
        ("$$", "$$"),  # delimiters around nothing are kept, not emptied
        ("\\(\\)", "\\(\\)"),
        ("Option X.", "Option X"),  # trailing punctuation only
        ("$ 5", "5"),  # a space after the currency sign goes with it
    ],
)
def test_clean_answer_on_its_edges(stated, cleaned):
    assert clean_answer(stated) == cleaned


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("The answer is **42**.", "42"),  # bold markers before the value do not hide it
        ("The answer is X = 5.", "5"),  # an equation: its right-hand side
        ("So \\boxed{7", None),  # an unclosed box states nothing
    ],
)
def test_stated_answer_on_its_edges(text, answer):
    assert stated_answer(text) == answer


def test_analysis_json_is_found_inside_text_with_braces_in_its_strings():
    text = 'Verdict: {"bad_steps": [2], "analysis": "a {b}", "advice": "c"}.'
    analysis = parse_analysis(text)
    assert analysis.bad_steps == [2] and analysis.text == "a {b} c"  # read as JSON, not as free text


def test_analysis_json_without_bad_steps_means_none():
    analysis = parse_analysis('{"analysis": "fine", "advice": ""}')
    assert analysis.bad_steps == [] and analysis.text == "fine" and analysis.understood


def test_free_text_verdicts_keep_their_text():
    wrong = parse_analysis("Step 2 is wrong: 3 * 4 is 12.")
    assert wrong.bad_steps == [2] and wrong.text == "Step 2 is wrong: 3 * 4 is 12."
    right = parse_analysis("No errors, the chain is fine.")
    assert right.bad_steps == [] and right.text == "No errors, the chain is fine." and right.finds_no_error
    unread = parse_analysis("Interesting.")
    assert unread.bad_steps == [] and unread.text == "Interesting." and unread.understood is False


def test_the_shared_agents_request_settings():
    context = RunContext("q", ScriptedBackend(default="x"), Budget())
    assert thinker(context, max_tokens=5).stop == ("\n",)  # one line per thought unless told otherwise
    assert judge(context).constraint.pattern == SCORE_PATTERN
    assert analyst(context, max_tokens=77).constraint.kind == "json_schema"
    assert analyst(context, max_tokens=77).max_tokens == 77


def test_an_experience_renders_numbered_steps_then_feedback():
    assert Experience(["a", "b"], "fix b").render() == "Step 1: a\nStep 2: b\nFeedback: fix b"


def test_graph_refuses_unknown_nodes_with_their_numbers():
    graph = ThoughtGraph("q")
    node = graph.add_thought(0, "a")
    with pytest.raises(KeyError, match="no node 99"):
        graph.add_thought(99, "b")
    with pytest.raises(KeyError, match=f"rollback {node.id} -> 42"):
        graph.add_rollback(node.id, 42)  # the source exists, the target does not


def test_position_counts_only_siblings_in_the_same_scope():
    graph = ThoughtGraph("q")
    graph.add_thought(0, "a", metadata={"tree": 0})
    graph.add_thought(0, "b", metadata={"tree": 1})
    c = graph.add_thought(0, "c", metadata={"tree": 1})
    assert graph.position(c.id) == (2,)
    assert graph.position(c.id, scope="tree") == (1,)  # second of tree 1's children


def test_mermaid_labels_are_cut_at_60_characters_with_quotes_and_newlines_replaced():
    graph = ThoughtGraph("q")
    graph.add_thought(0, 'say "hi"\nthen ' + "x" * 70)
    line = graph.to_mermaid().splitlines()[2]
    assert line == "    n1[\"say 'hi' then " + "x" * 46 + '"]'  # 14 characters of text, then 46 x: 60


def test_bot_sampling_pools_are_checked_by_range():
    from thoughtgraph.reasoning.bot import BoTConfig

    assert BoTConfig(temperatures=(0.0, 1.5), top_ps=(1.0,)).top_ps == (1.0,)  # 0 and > 1 are temperatures
    for pools, shown in [
        ({"temperatures": ()}, "BoTConfig.temperatures must be a non-empty list of values in range, got []"),
        ({"temperatures": (-0.1,)}, "got [-0.1]"),
        ({"top_ps": (1.5,)}, "BoTConfig.top_ps must be a non-empty list of values in range, got [1.5]"),
    ]:
        with pytest.raises(ValueError) as raised:
            BoTConfig(**pools)
        assert shown in str(raised.value)


def test_bot_worst_case_calls_by_hand():
    from thoughtgraph.reasoning.bot import BoTConfig

    config = BoTConfig(iterations=2, trees=3, max_expansions=4, distinct_retries=1, branching=2)
    # per expansion: the judge's call + 1 retry + 2 children = 4; per iteration 3 trees x 4 expansions x 4 + the
    # analysis = 49; two iterations
    assert config.worst_case_calls() == 98


def test_an_agent_asks_for_no_logprobs_unless_told():
    context = RunContext("q", ScriptedBackend(default="x"), Budget())
    request = thinker(context, max_tokens=5).request(question="q", steps=[], experiences=[])
    assert request.logprobs is False


def _final_answer_run(reply, chain, constrained=True):
    import asyncio
    import dataclasses

    from thoughtgraph.backends.scripted import ScriptRule
    from thoughtgraph.reasoning.cot import CoTConfig, answer_after

    backend = ScriptedBackend([ScriptRule("only the final answer", [reply])])
    if not constrained:
        backend.capabilities = dataclasses.replace(backend.capabilities, constraints=frozenset())
    context = RunContext("What is 5 + 7?", backend, Budget())
    return asyncio.run(answer_after(context, CoTConfig(), chain)), backend.calls[-1]


def test_the_final_answer_request_after_a_chain():
    answer, request = _final_answer_run("1,250", "")
    assert answer == "1250"  # constrained: the reply is the answer, without thousands separators
    assert [m.content for m in request.messages if m.role == "assistant"] == ["-"]  # an empty chain is shown as "-"
    # unconstrained: the answer stated in the reply, else the one in the chain, else none
    assert _final_answer_run("It is 12.", "The answer is 12.", constrained=False)[0] == "12"
    assert _final_answer_run("hmm", "so 5 + 7 = 12. The answer is 12.", constrained=False)[0] == "12"
    assert _final_answer_run("hmm", "no idea", constrained=False)[0] is None


def test_chain_of_thought_passes_its_temperature_and_counts_an_answer_read_from_the_chain():
    from thoughtgraph.backends.scripted import ScriptRule
    from thoughtgraph.reasoning.api import solve

    backend = ScriptedBackend([ScriptRule("only the final answer", ["12"])], default="5 + 7 = 12")
    solution = solve("What is 5 + 7?", "cot", backend, temperature=0.7)
    assert backend.calls[0].temperature == 0.7 and solution.answer == "12"
    # one call allowed: no budget to ask for the answer alone, so it is read from the chain, and counted
    solution = solve("What is 5 + 7?", "cot", ScriptedBackend(default="5 + 7 = 12"), max_calls=1)
    assert solution.usage["events"]["answer_read_from_chain"] == 1 and solution.answer == "12"
