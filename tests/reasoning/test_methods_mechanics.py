"""Each method's mechanics with the ScriptedBackend test double: deterministic and exact."""

import json
import math

import pytest

from thoughtgraph.agents.runtime import Budget, BudgetExceeded
from thoughtgraph.backends import Capabilities, CapabilityError, Choice
from thoughtgraph.backends.scripted import ScriptedBackend, ScriptedResponse, ScriptRule, scripted_tokens
from thoughtgraph.reasoning import solve
from thoughtgraph.reasoning.bot import BoTConfig, aggregate_best_first, aggregate_greedy, plan_tree
from thoughtgraph.reasoning.context import RunContext
from thoughtgraph.reasoning.gg import GGConfig, checks_degeneration, degenerate, step_score
from thoughtgraph.reasoning.graph import ROOT
from thoughtgraph.reasoning.steps import majority_vote, parse_analysis, parse_score, weighted_vote
from thoughtgraph.reasoning.tot import keep_best

NO_ERROR = json.dumps({"bad_steps": [], "analysis": "all steps are right", "advice": "none"})


def analysis(*bad: int, text: str = "a step is wrong") -> str:
    return json.dumps({"bad_steps": list(bad), "analysis": text, "advice": "recompute"})


def context_with_scores(chains: dict[str, list[float]]) -> tuple[RunContext, dict[str, int]]:
    """A graph with one chain per key, steps scored as given; returns the leaf id of each chain."""
    context = RunContext("q", ScriptedBackend(default="x"), Budget())
    leaves = {}
    for name, scores in chains.items():
        node = ROOT
        for i, score in enumerate(scores):
            node = context.add_thought(node, f"{name}{i}", score=score).id
        leaves[name] = node
    return context, leaves


# -- shared parsers and votes -------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "score"), [("0.8", 0.8), ("Score: 1", 1.0), ("7 then 0.25", 0.25), ("high", 0.5)])
def test_score_parser_takes_the_first_number_in_range_else_the_default(text, score):
    assert parse_score(text) == score


def test_analysis_parser_reads_json_and_free_text():
    assert parse_analysis(analysis(2, 3)).bad_steps == [2, 3]
    assert parse_analysis("Bad step index: 4. The sum is wrong.").bad_steps == [4]
    assert not parse_analysis("No errors found.").finds_error


def test_votes():
    assert majority_vote(["5", "6", "5", ""])[0] == "5"
    answer, totals = weighted_vote([("A", 0.9), ("B", 0.3), ("B", 0.3)])
    assert answer == "A" and totals["B"] == pytest.approx(0.6)


# -- BoT ---------------------------------------------------------------------------------------------


def test_bot_best_first_aggregation_takes_the_largest_sum_even_from_an_early_tree():
    context, leaves = context_with_scores({"first": [0.9, 0.9], "middle": [0.1, 0.2], "last": [0.5, 0.6]})
    chain = aggregate_best_first(context, [leaves["first"], leaves["middle"], leaves["last"]])
    assert [context.graph.nodes[i].text for i in chain] == ["first0", "first1"]


def test_bot_greedy_aggregation_takes_the_best_step_at_each_index():
    context, leaves = context_with_scores({"a": [0.9, 0.1, 0.4], "b": [0.2, 0.8]})
    chain = aggregate_greedy(context, [context.graph.path(leaves["a"]), context.graph.path(leaves["b"])])
    assert [context.graph.nodes[i].text for i in chain] == ["a0", "b1", "a2"]


def bot_backend(analyses: list[str]) -> ScriptedBackend:
    return ScriptedBackend([
        ScriptRule("You check reasoning", analyses),
        ScriptRule("You grade reasoning", ["0.9", "0.3"], cycle=True),
        ScriptRule("Write step", ["Add the numbers.", "The answer is 4."], cycle=True),
    ])  # fmt: skip


def test_bot_grows_the_configured_trees_with_drawn_policies_and_stops_on_no_error():
    backend = bot_backend([NO_ERROR])
    solution = solve("What is 2 + 2?", "bot", backend, seed=3, iterations=4, trees=3, branching=2, max_expansions=1)
    nodes = list(solution.graph.nodes.values())[1:]
    assert sorted({n.metadata["tree"] for n in nodes}) == [0, 1, 2]
    assert all(sum(1 for n in nodes if n.metadata["tree"] == t) == 2 for t in range(3))  # branching 2
    expected = {t: plan_tree(BoTConfig(), 3, 0, t).policy for t in range(3)}
    assert {n.metadata["tree"]: n.metadata["policy"] for n in nodes} == expected
    kinds = [c.messages[0].content.split(".")[0] for c in backend.calls]
    assert sum(k.startswith("You check") for k in kinds) == 1  # early stop after the first analysis
    assert solution.usage["calls"] == 3 + 6 + 1  # 3 thinker (n=2) + 6 judge + 1 analyst
    assert len(solution.graph.experiences) == 1
    assert solution.answer == "4"


def test_bot_feeds_the_analysis_into_the_next_iteration_prompt():
    backend = bot_backend([analysis(1, text="ANALYSIS-MARKER: the sum is off"), NO_ERROR])
    solution = solve("What is 2 + 2?", "bot", backend, iterations=3, trees=2, max_expansions=1)
    thinker_calls = [c for c in backend.calls if "Write step" in c.messages[-1].content]
    first_iteration, second_iteration = thinker_calls[:2], thinker_calls[2:]
    assert second_iteration and all("ANALYSIS-MARKER" in c.messages[-1].content for c in second_iteration)
    assert not any("ANALYSIS-MARKER" in c.messages[-1].content for c in first_iteration)
    assert len(solution.graph.experiences) == 2


def test_bot_rejects_bad_config():
    with pytest.raises(ValueError, match="trees must be >= 1"):
        solve("q", "bot", ScriptedBackend(default="x"), trees=-1)
    with pytest.raises(ValueError, match="aggregation must be"):
        BoTConfig(aggregation="mean")
    with pytest.raises(ValueError, match="max_depth must be >= 1, got 0"):
        solve("q", "tot", ScriptedBackend(default="x"), max_depth=0)
    with pytest.raises(ValueError, match="max_depth must be >= 1, got 0"):
        solve("q", "tr", ScriptedBackend(default="x"), max_depth=0)


# -- TR ----------------------------------------------------------------------------------------------


def tr_backend(analyses: list[ScriptRule], steps: list[str]) -> ScriptedBackend:
    return ScriptedBackend([ScriptRule("Write step", steps), *analyses], default=NO_ERROR)


def test_tr_rolls_back_to_step_k_minus_1_and_passes_the_experience_down():
    backend = tr_backend(
        [ScriptRule("Step 2: second move", [analysis(2, text="EXPERIENCE-MARKER"), NO_ERROR])],
        ["first move", "second move", "better second move", "The answer is 5."],
    )
    solution = solve("q?", "tr", backend, max_solutions=1)
    graph = solution.graph
    (rollback,) = graph.rollbacks()
    first = next(n for n in graph.nodes.values() if n.text == "first move")
    second = next(n for n in graph.nodes.values() if n.text == "second move")
    better = next(n for n in graph.nodes.values() if n.text == "better second move")
    assert (rollback.source, rollback.target) == (second.id, first.id)
    assert rollback.metadata["experience"] == 0
    assert better.parent == first.id and better.metadata["experiences"] == [0]  # the regrown branch carries it
    assert "experiences" not in first.metadata and "experiences" not in second.metadata
    regrow = [c for c in backend.calls if "Write step 2" in c.messages[-1].content][-1]
    assert "EXPERIENCE-MARKER" in regrow.messages[-1].content and "avoid them" in regrow.messages[-1].content
    assert solution.answer == "5"


def test_tr_terminates_within_every_limit_when_every_step_is_named_bad():
    backend = tr_backend([ScriptRule("You check reasoning", [analysis(1)])], ["a step", "another step"])
    config = {"max_depth": 4, "max_steps": 60, "max_solutions": 3}
    solution = solve("q?", "tr", backend, **config)
    graph = solution.graph
    rollbacks = graph.rollbacks()
    assert rollbacks, "the script names bad steps, so some rollbacks must happen"
    for node in graph.nodes:
        assert sum(e.source == node for e in rollbacks) <= 1  # max_outgoing
        assert sum(e.target == node for e in rollbacks) <= 2  # max_incoming
        path = [ROOT, *graph.path(node)]
        assert sum(e.source in path for e in rollbacks) <= 3  # max_chain_rollbacks
        for i, target in enumerate(path):  # max_into_target_from_chain
            assert sum(e.source in path[i:] and e.target == target for e in rollbacks) <= 2
    assert len(graph) <= config["max_steps"]
    assert solution.usage["events"].get("rollback_refused_by_limits", 0) > 0


def test_tr_ignores_out_of_range_step_indices():
    backend = tr_backend([ScriptRule("You check reasoning", [analysis(0, 9)])], ["s1", "s2", "The answer is 1."])
    solution = solve("q?", "tr", backend, max_solutions=1)
    assert not solution.graph.rollbacks()
    assert solution.usage["events"]["invalid_step_index"] >= 2
    assert solution.answer == "1"


# -- GG ----------------------------------------------------------------------------------------------


def test_gg_step_score_is_mean_probability_plus_weighted_novelty():
    choice = Choice("x", "stop", 4, tokens=[" the", " cat", " sat", " down"], logprobs=[math.log(0.5)] * 2 + [0.0] * 2)
    score, confidence, novelty = step_score(choice, seen={" the", " cat"}, novelty_weight=0.5)
    assert confidence == pytest.approx(0.75)
    assert novelty == pytest.approx(0.5)  # " sat", " down" are new tokens; " the", " cat" were seen
    assert score == pytest.approx(1.0)


def test_gg_degeneration_guard_as_the_reference():
    config = GGConfig(max_steps=200, degeneration_after=40, degeneration_every=10)  # the reference's numbers
    assert degenerate("so wait, wait. Wait... wait", config)  # four in the window: more than 3
    assert not degenerate("wait wait wait", config)
    assert not degenerate("wait wait wait wait" + " x" * 80, config)  # outside the last 150 characters
    reference = list(range(50, 197, 10))  # after 40, multiples of 10, not the last three of 200
    assert [i for i in range(200) if checks_degeneration(i, config)] == reference
    assert [i for i in range(200) if checks_degeneration(i, GGConfig(max_steps=200))] == reference  # the default
    # scaled to 20 steps: after 20% (4), every 5% (1), not the last three: 5 to 16; at 40 and 10 it never ran
    assert [i for i in range(20) if checks_degeneration(i, GGConfig(max_steps=20))] == list(range(5, 17))


def lp(text: str, p: float) -> ScriptedResponse:
    return ScriptedResponse(text, [math.log(p)] * len(scripted_tokens(text)))


def test_gg_keeps_the_best_candidate_each_step_and_a_finished_beam_offers_all_its_last_candidates():
    # paths=2, candidates=2: one subtree, one beam (the reference's n // beam_width), best of two each step;
    # when the kept step states an answer, both candidates of that step are finished chains (paths in all)
    steps = [lp("Start here", 0.9), lp("Begin there", 0.5),
             lp("The answer is 8.", 0.2), lp("The answer is 7.", 0.95)]  # fmt: skip
    backend = ScriptedBackend([ScriptRule("one step per line", steps)])
    solution = solve("q?", "gg", backend, paths=2, candidates=2)
    assert solution.usage["calls"] == 2  # one request per beam and step, not one per candidate
    finals = solution.graph.finals()
    assert sorted(n.answer for n in finals) == ["7", "8"]
    assert {solution.graph.nodes[n.parent].text for n in finals} == {"Start here"}  # 0.9 beat 0.5
    assert solution.answer == "7"  # 0.95 > 0.2: the confidence vote
    assert solution.candidates["7"] == pytest.approx(0.95) and solution.candidates["8"] == pytest.approx(0.2)


def test_gg_prunes_degenerate_beams_and_refuses_backends_without_logprobs():
    # two subtrees of one beam each; from iteration 1 every candidate loops on "wait", so the best candidate
    # of each beam is degenerate and both beams are pruned
    steps = ["Let me think.", "Let me see.", "wait wait wait wait"]
    backend = ScriptedBackend([ScriptRule("one step per line", steps)])
    config = {"paths": 4, "candidates": 2, "max_steps": 6, "degeneration_after": 0, "degeneration_every": 1}
    solution = solve("q?", "gg", backend, **config)
    assert solution.usage["events"]["degenerate_beam"] == 2
    assert solution.answer is None
    assert solution.usage["calls"] == 4  # one request per iteration and beam: 2 + 2

    class NoLogprobs(ScriptedBackend):
        capabilities = Capabilities(logprobs=False)

    with pytest.raises(CapabilityError, match="logprobs"):
        solve("q?", "gg", NoLogprobs(default="x"))
    with pytest.raises(ValueError, match="multiple of candidates"):
        GGConfig(paths=5, candidates=2)


# -- ToT, budgets ------------------------------------------------------------------------------------


def test_tot_keeps_the_best_b_and_grows_only_them():
    context, leaves = context_with_scores({"a": [0.2], "b": [0.9], "c": [0.5]})
    assert keep_best(context, list(leaves.values()), 2) == [leaves["b"], leaves["c"]]
    backend = ScriptedBackend([
        ScriptRule("Write step 1", ["bad idea", "good idea", "meh idea"]),
        ScriptRule("Write step 2", ["The answer is 3.", "The answer is 4.", "The answer is 5."]),
        ScriptRule("Step 1: good idea", ["0.9"]), ScriptRule("You grade", ["0.1"]),
    ])  # fmt: skip
    solution = solve("q?", "tot", backend, proposals=3, beam=1, max_depth=2)
    second_level = [c for c in backend.calls if "Write step 2" in c.messages[-1].content]
    assert len(second_level) == 1 and "good idea" in second_level[0].messages[-1].content
    assert solution.answer in {"3", "4", "5"}


@pytest.mark.parametrize("method", ["sc", "bot", "tr"])
def test_budgets_stop_runs_with_the_best_answer_so_far(method):
    backend = ScriptedBackend([
        ScriptRule("You check", [analysis(1)]), ScriptRule("You grade", ["0.5"]),
        ScriptRule("Write step", ["The answer is 6."]),
    ], default="The answer is 6.")  # fmt: skip
    solution = solve("q?", method, backend, max_calls=2)
    assert solution.usage["calls"] <= 2
    if method != "sc":  # sc needs one call only
        assert solution.stopped_by.startswith("max_calls=2")
        assert solution.usage["events"]["budget_exceeded"] == 1
    assert solution.answer == "6"


def test_budget_values_are_validated():
    with pytest.raises(ValueError, match="max_seconds must be positive"):
        solve("q", "cot", ScriptedBackend(default="x"), max_seconds=0)
    assert issubclass(BudgetExceeded, Exception)


def test_dataset_presets_fill_defaults_and_options_override_them():
    from thoughtgraph.reasoning.api import make_config

    config = make_config("bot", preset="game24", trees=3)
    assert config.max_depth == 4 and config.temperatures == (0.1, 0.3, 0.5, 0.7) and config.trees == 3
    assert make_config("bot", preset="math").trees == 5
    assert make_config("gg", preset="math").min_step_tokens == 50
    with pytest.raises(ValueError, match="has no preset 'mmlu'"):
        make_config("bot", preset="mmlu")


def test_tot_value_words_map_sure_likely_impossible():
    backend = ScriptedBackend([
        ScriptRule("Write step 1", ["4 * 6 = 24", "1 + 1 = 2"]),
        ScriptRule("Step 1: 4 \\* 6", ["sure"]), ScriptRule("Can this reach", ["impossible"]),
    ])  # fmt: skip
    solution = solve("1 1 4 6", "tot", backend, value_mode="words", proposals=2, beam=1, max_depth=1)
    scores = sorted(n.score for n in list(solution.graph.nodes.values())[1:])
    assert scores == pytest.approx([3 * 0.001, 3 * 20.0])  # three valuations summed, as the reference
    assert solution.graph.nodes[solution.graph.chosen[-1]].text == "4 * 6 = 24"
    assert solution.prompt_versions["tot/value_words"] == 1


async def test_thoughts_stream_as_they_are_produced_then_the_solution():
    from thoughtgraph.reasoning import Solution, stream_thoughts
    from thoughtgraph.reasoning.graph import ThoughtNode

    backend = ScriptedBackend([ScriptRule("Write step 1", ["first"]), ScriptRule("Write step 2", ["The answer is 2."])],
                              default=NO_ERROR)  # fmt: skip
    items = [item async for item in stream_thoughts("q?", "tr", backend, max_solutions=1)]
    thoughts, last = items[:-1], items[-1]
    assert [t.text for t in thoughts] == ["first", "The answer is 2."]
    assert all(isinstance(t, ThoughtNode) for t in thoughts)
    assert isinstance(last, Solution) and last.answer == "2" and len(last.graph) == 2


def test_score_parser_bounds_and_failure_count():
    from thoughtgraph.backends.ledger import UsageLedger

    assert parse_score("0") == 0.0  # 0 is a score (the range is closed), not a parse failure
    assert parse_score("1.5 or 0.3") == 0.3  # 1.5 is out of range: the next number in range counts
    with UsageLedger() as ledger:
        assert parse_score("2 out of 3") == 0.5  # no number in [0, 1]: the default, counted
        assert parse_score("0.9") == 0.9
    assert dict(ledger.events) == {"parse_failure": 1}


def test_analysis_keeps_the_reply_text_and_an_empty_list_for_no_error():
    named = parse_analysis("Step 2 is wrong because 3 + 4 is not 8.")
    assert named.bad_steps == [2] and named.text == "Step 2 is wrong because 3 + 4 is not 8."
    clean = parse_analysis("No errors found.")
    assert clean.bad_steps == [] and clean.text == "No errors found." and clean.understood
    assert not clean.finds_error and clean.finds_no_error
