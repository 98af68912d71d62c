"""The second review against the papers and reference code: BoT's depth, heterogeneity, sink chains, early stop
and experience cap; TR's re-queued thought, analysed depth sinks and weighted vote; GG's novelty over the problem;
ToT's summed valuations and zeroed duplicates. Expected values are worked out by hand in each test."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from thoughtgraph.backends.scripted import ScriptedBackend, ScriptedResponse, ScriptRule, scripted_tokens
from thoughtgraph.reasoning import solve
from thoughtgraph.reasoning.bot import BoTConfig, plan_tree

NO_ERROR = json.dumps({"bad_steps": [], "analysis": "all right", "advice": "none"})
WRITER = "You solve problems one step at a time"


def analysis(*bad: int) -> str:
    return json.dumps({"bad_steps": list(bad), "analysis": f"MARK{bad}", "advice": "redo"})


def writer_calls(backend: ScriptedBackend) -> int:
    return sum(1 for call in backend.calls if call.messages[0].content.startswith(WRITER))


# -- Boosting of Thoughts ---------------------------------------------------------------------------


def endless_bot(score: str = "0.5") -> ScriptedBackend:
    """Distinct ordinary steps at every depth; never an answer."""
    return ScriptedBackend(
        [ScriptRule("You grade", [score]), ScriptRule("You check", [NO_ERROR]), ScriptRule("Write step", ["l", "r"])],
        default="x",
    )


def test_bot_depth_counts_the_root_as_the_references_max_length():
    backend = ScriptedBackend(
        [ScriptRule("You grade", ["0.5"]), ScriptRule("You check", [NO_ERROR]),
         ScriptRule("Write step", ["left", "right"], cycle=True)],
    )  # fmt: skip
    solution = solve("q?", "bot", backend, iterations=1, trees=1, max_sinks=2, max_depth=3, policies=("dfs",))
    # a path of 3 nodes with the root: sinks are the depth-2 steps (the reference's len(path) >= max_length)
    assert max(node.depth for node in solution.graph.nodes.values()) == 2


def test_bot_draws_each_trees_policy_once_and_its_sampling_every_iteration():
    config = BoTConfig(trees=6)
    plans = [[plan_tree(config, 5, iteration, tree) for iteration in range(6)] for tree in range(6)]
    assert all(len({plan.policy for plan in tree}) == 1 for tree in plans)  # the reference builds its trees once
    assert len({plan.policy for tree in plans for plan in tree}) > 1  # trees still differ from each other
    assert any(len({(plan.temperature, plan.top_p) for plan in tree}) > 1 for tree in plans)  # drawn per iteration


def test_bot_aggregates_finished_chains_not_a_better_scored_partial_one():
    # one BFS tree, max_sinks=1: the question's children are "x1" (0.9, open) and an answer (0.1, a sink); the
    # tree stops at its sink, and the chain is the answer, not the higher-scored unexpanded "x1"
    backend = ScriptedBackend(
        [ScriptRule("You grade[\\s\\S]*Step 1: x1", ["0.9"]), ScriptRule("You grade", ["0.1"]),
         ScriptRule("You check", [NO_ERROR]), ScriptRule("Write step 1\\.", ["x1", "The answer is 3."])],
    )  # fmt: skip
    solution = solve("q?", "bot", backend, iterations=1, trees=1, max_sinks=1, policies=("bfs",))
    assert [solution.graph.nodes[i].text for i in solution.graph.chosen] == ["The answer is 3."]
    assert solution.reasoning == "The answer is 3." and solution.answer == "3"


def test_bot_a_tree_stopped_before_any_sink_offers_its_open_chains():
    solution = solve("q?", "bot", endless_bot(), iterations=1, trees=1, max_expansions=1, policies=("bfs",))
    assert len(solution.graph.chosen) == 1  # the best partial chain, when no tree of the iteration has a sink


def confident_trees(**options) -> tuple[ScriptedBackend, object]:
    backend = ScriptedBackend(
        [ScriptRule("You grade", ["0.95"]), ScriptRule("You check", [NO_ERROR]),
         ScriptRule("Write step 1\\.", ["left", "right"], cycle=True),
         ScriptRule("Write step 2\\.", ["The answer is 9.", "So the answer is 9."], cycle=True)],
    )  # fmt: skip
    solution = solve("q?", "bot", backend, iterations=1, trees=3, max_sinks=4, policies=("bfs",), **options)
    return backend, solution


def test_bot_a_confident_final_chain_stops_the_other_trees_of_the_iteration():
    # each tree: expansion 0 (the question), expansion 1 ("left": two confident finals). Without the stop a
    # tree then grows "right" too (two more finals, max_sinks 4): 3 expansions per tree instead of 2
    backend, solution = confident_trees()
    assert writer_calls(backend) == 3 * 2 and solution.usage["events"]["bot_confident_stop"] == 1
    backend, solution = confident_trees(confident_score=None)
    assert writer_calls(backend) == 3 * 3 and "bot_confident_stop" not in solution.usage["events"]
    backend, solution = confident_trees(confident_score=0.96)  # 0.95 is not above it
    assert writer_calls(backend) == 3 * 3


def test_bot_experience_cap_keeps_the_last_analyses():
    backend = ScriptedBackend(
        [ScriptRule("You grade", ["0.5"]), ScriptRule("You check", [analysis(1), analysis(2), NO_ERROR]),
         ScriptRule("Write step 1\\.", ["The answer is 1.", "So the answer is 1."], cycle=True)],
    )  # fmt: skip
    solve("q?", "bot", backend, iterations=3, trees=1, max_sinks=2, experience_cap=1)
    third = [c.messages[-1].content for c in backend.calls if c.messages[0].content.startswith(WRITER)][-1]
    assert "MARK(2,)" in third and "MARK(1,)" not in third


# -- Thought Rollback --------------------------------------------------------------------------------


def test_tr_the_thought_that_rolled_back_grows_again_after_the_regrown_branch():
    backend = ScriptedBackend(
        [ScriptRule("Write step 1\\.", ["s1", "s1b"]), ScriptRule("Write step 2\\.", ["The answer is 2."]),
         ScriptRule("You check", [analysis(1), NO_ERROR], cycle=False)],
        default=NO_ERROR,
    )  # fmt: skip
    solution = solve("q?", "tr", backend, max_solutions=2)
    s1 = next(n for n in solution.graph.nodes.values() if n.text == "s1")
    # s1 rolled back to the question (s1b grew from there, then its answer); then s1 itself was grown
    assert [solution.graph.nodes[c].text for c in solution.graph.children(s1.id)] == ["The answer is 2."]
    assert len(solution.graph.finals()) == 2


def test_tr_chains_at_the_depth_limit_are_sinks_and_are_analysed():
    backend = ScriptedBackend(
        [ScriptRule("Write step 1\\.", ["one"]), ScriptRule("Write step 2\\.", ["two"]),
         ScriptRule("Write step", ["deeper"])],
        default=NO_ERROR,
    )  # fmt: skip
    solution = solve("q?", "tr", backend, max_depth=3)
    assert max(node.depth for node in solution.graph.nodes.values()) == 2  # the root counts: 3 nodes
    analysed = [c.messages[-1].content for c in backend.calls if "Write step" not in c.messages[-1].content]
    assert len(analysed) == 2 and "Step 2: two" in analysed[-1]  # "one" before it grows, then the sink


def test_tr_weighted_vote_discounts_answers_on_chains_that_rolled_back():
    def run(vote: str) -> str | None:
        backend = ScriptedBackend(
            [ScriptRule("Write step 1\\.", ["The answer is 1.", "The answer is 2."]),
             ScriptRule("You check", [analysis(1), NO_ERROR])],
        )  # fmt: skip
        return solve("q?", "tr", backend, max_solutions=2, vote=vote).answer

    # "1" rolled back from its own chain: weight 1 / (1 + 1); "2" did not: weight 1. A majority tie keeps
    # the first answer
    assert run("weighted") == "2"
    assert run("majority") == "1"


# -- Guided by Gut -----------------------------------------------------------------------------------


def lp(text: str, p: float = 0.9) -> ScriptedResponse:
    return ScriptedResponse(text, [math.log(p)] * len(scripted_tokens(text)))


def test_gg_novelty_leaves_out_the_problems_own_tokens():
    backend = ScriptedBackend([ScriptRule("one step per line", [lp("alpha gamma"), lp("\\boxed{1}")])])
    solution = solve("alpha beta", "gg", backend, paths=1, candidates=1)
    assert solution.graph.nodes[1].novelty == 0.5  # "alpha" is the problem's token, " gamma" is new


# -- Tree of Thoughts --------------------------------------------------------------------------------


def test_tot_sums_three_valuations_and_values_a_repeated_state_zero_without_a_call():
    backend = ScriptedBackend(
        [ScriptRule("You grade[\\s\\S]*Step 1: two", ["0.9", "0.6", "0.3"]), ScriptRule("You grade", ["0.5"]),
         ScriptRule("Write step 1\\.", ["one", "one ", "two"])],
    )  # fmt: skip
    solution = solve("q?", "tot", backend, proposals=3, beam=3, max_depth=1)
    scores = sorted((n.text, n.score) for n in list(solution.graph.nodes.values())[1:])
    assert scores == [("one", 0.0), ("one", pytest.approx(3 * 0.5)), ("two", pytest.approx(0.9 + 0.6 + 0.3))]
    valuations = [c for c in backend.calls if c.messages[0].content.startswith("You grade")]
    assert len(valuations) == 2 and all(c.n == 3 for c in valuations)
    assert solution.usage["events"]["tot_duplicate_state"] == 1


def _fit(function, config, calls=None, tokens=None, prompt=0):
    from thoughtgraph.reasoning.fitting import Allowance

    return function(config, Allowance(calls=calls, tokens=tokens, prompt_tokens=prompt))


def test_guided_by_gut_fits_fewer_beams_then_fewer_steps_then_fewer_candidates_by_hand():
    from thoughtgraph.reasoning.gg import GGConfig, fit_beams

    default = GGConfig()  # 8 paths of 4 candidates: 2 beams, 20 steps of 256 tokens
    # 30 calls: a beam needs 21 (20 steps and the cue), so 1 beam; 30 // 1 - 1 = 29 steps allowed, 20 kept
    one = _fit(fit_beams, default, calls=30)
    assert (one.paths, one.candidates, one.max_steps, one.step_tokens) == (4, 4, 20, 256)
    # 12 calls: 1 beam of 12 // 1 - 1 = 11 steps
    assert (_fit(fit_beams, default, calls=12).paths, _fit(fit_beams, default, calls=12).max_steps) == (4, 11)
    assert _fit(fit_beams, default, calls=50) is default  # 50 // 21 = 2 beams of 20 steps: nothing to shrink
    # 20000 tokens, prompt 100: per step 20000 // (2 * 20) - 100 = 400; candidates min(4, 400 // 32) = 4,
    # steps of min(256, 400 // 4) = 100 tokens
    wide = _fit(fit_beams, default, tokens=20000, prompt=100)
    assert (wide.paths, wide.candidates, wide.max_steps, wide.step_tokens) == (8, 4, 20, 100)
    # 4000 tokens, prompt 30: per step 4000 // 40 - 30 = 70; candidates 70 // 32 = 2, steps of 70 // 2 = 35
    narrow = _fit(fit_beams, dataclasses.replace(default, min_step_tokens=50), tokens=4000, prompt=30)
    assert (narrow.paths, narrow.candidates, narrow.step_tokens, narrow.min_step_tokens) == (4, 2, 35, 35)


def test_tree_of_thoughts_fits_fewer_proposals_then_a_narrower_beam_by_hand():
    from thoughtgraph.reasoning.tot import ToTConfig, fit_levels

    default = ToTConfig()  # 3 proposals, beam 2, steps of 128 tokens; a step counts min(128, 64) + prompt
    # 5 calls: proposals min(3, (5 - 1) // 1) = 3; beam min(2, 5 // (1 + 3)) = 1
    assert (_fit(fit_levels, default, calls=5, prompt=20).proposals, _fit(fit_levels, default, calls=5).beam) == (3, 1)
    # 3 calls: proposals (3 - 1) // 1 = 2; beam 3 // (1 + 2) = 1
    three = _fit(fit_levels, default, calls=3, prompt=20)
    assert (three.proposals, three.beam) == (2, 1)
    # 400 tokens, prompt 20 (a step is 84): proposals min(3, 400 // 168) = 2; beam min(2, 400 // (168 * 2)) = 1
    tokens = _fit(fit_levels, default, tokens=400, prompt=20)
    assert (tokens.proposals, tokens.beam) == (2, 1)
    # 1000 tokens: proposals min(3, 1000 // 168 = 5) = 3; beam min(2, 1000 // 504) = 1
    assert _fit(fit_levels, default, tokens=1000, prompt=20).beam == 1
    assert _fit(fit_levels, default, calls=100, tokens=10000, prompt=20) is default


def test_boosting_of_thoughts_and_best_of_n_fit_fewer_branches_by_hand():
    from thoughtgraph.reasoning.bon import BestOfNConfig, fit_samples_and_judges
    from thoughtgraph.reasoning.bot import BoTConfig, fit_trees

    bot = BoTConfig()  # 15 trees, branching 2, steps of 128: a tree needs 1 + 2 calls beside the analysis
    assert _fit(fit_trees, bot, calls=10, prompt=50).trees == 3  # (10 - 1) // 3
    assert _fit(fit_trees, bot, calls=2).trees == 1  # (2 - 1) // 3 = 0, but one tree always runs
    # 2000 tokens, prompt 50: a tree's children need 2 * (128 + 2 * 50) = 456 tokens; 2000 // 456 = 4
    assert _fit(fit_trees, bot, tokens=2000, prompt=50).trees == 4
    assert _fit(fit_trees, bot, calls=100) is bot  # (100 - 1) // 3 = 33 >= 15
    bon = BestOfNConfig()  # 4 samples of 512 tokens; a sample counts 2 * (prompt + min(512, 128))
    assert _fit(fit_samples_and_judges, bon, calls=3).samples == 2  # (3 - 1) // 1: the judge's call is shared
    assert _fit(fit_samples_and_judges, bon, tokens=1000, prompt=72).samples == 2  # 1000 // 400
    assert _fit(fit_samples_and_judges, bon, tokens=10000, prompt=72) is bon  # 25 fit, 4 wanted
