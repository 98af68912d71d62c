"""Guided by Gut at its edges, worked out by hand: what a small budget leaves of the search, when the
degeneration guard runs, a step without logprobs, which candidate a beam keeps, and the path for backends that
cannot continue a reply."""

import dataclasses
import math

import pytest

from thoughtgraph.backends import CapabilityError
from thoughtgraph.backends.scripted import ScriptedBackend, ScriptedResponse, ScriptRule, scripted_tokens
from thoughtgraph.backends.types import Choice
from thoughtgraph.reasoning.api import solve
from thoughtgraph.reasoning.fitting import Allowance
from thoughtgraph.reasoning.gg import GGConfig, _updates, checks_degeneration, fit_beams, step_score


def fit(config, calls=None, tokens=None, prompt=0):
    return fit_beams(config, Allowance(calls=calls, tokens=tokens, prompt_tokens=prompt))


def test_gg_fit_at_the_boundaries_by_hand():
    default = GGConfig()  # 8 paths of 4 candidates: 2 beams; 20 steps; a beam needs 21 calls (steps and the cue)
    forty = fit(default, calls=40)  # 40 // 21 = 1 beam
    assert (forty.paths, forty.candidates, forty.max_steps) == (4, 4, 20)
    assert fit(default, calls=42) is default  # 42 // 21 = 2 beams: nothing to shrink
    two = fit(default, calls=2)  # 1 beam of 2 // 1 - 1 = 1 step
    assert (two.paths, two.max_steps) == (4, 1)
    # 1000 tokens, no prompt: per step 1000 // (2 beams x 20 steps) = 25; 25 // 32 = 0 candidates, so 1;
    # steps of 25 // 1 = 25 tokens
    small = fit(default, tokens=1000)
    assert (small.paths, small.candidates, small.step_tokens) == (2, 1, 25)
    tiny = fit(default, tokens=50)  # per step 50 // 40 = 1: one candidate of one token
    assert (tiny.candidates, tiny.step_tokens) == (1, 1)
    for fitted in (forty, two, small, tiny):  # counts stay whole numbers
        assert all(type(getattr(fitted, name)) is int for name in ("paths", "candidates", "max_steps", "step_tokens"))


def test_the_degeneration_guard_runs_every_nth_iteration_after_the_first_ones():
    config = GGConfig(max_steps=40, degeneration_every=3)  # after 40 // 5 = 8, every 3rd, not the last 3
    assert [i for i in range(41) if checks_degeneration(i, config)] == [9, 12, 15, 18, 21, 24, 27, 30, 33, 36]


def test_beam_updates_accumulate_and_an_empty_list_clears_them():
    assert _updates([(0, "a")], [(1, "b")]) == [(0, "a"), (1, "b")]
    assert _updates([(0, "a")], []) == []


def test_a_step_without_logprobs_scores_zero():
    choice = Choice("x", "stop", 1, tokens=["x"], logprobs=None)
    assert step_score(choice, set(), 0.5) == (0.0, 0.0, 0.0)


def test_gg_refuses_a_backend_without_logprobs_before_any_call():
    backend = ScriptedBackend(default="x")
    backend.capabilities = dataclasses.replace(backend.capabilities, logprobs=False)
    with pytest.raises(CapabilityError, match="cannot return token logprobs"):
        solve("q", "gg", backend)
    assert backend.calls == []


def lp(text, p):
    return ScriptedResponse(text, [math.log(p)] * len(scripted_tokens(text)))


def test_a_beam_keeps_the_best_score_not_the_most_confident_candidate():
    # "two plus two" repeats the problem (novelty 0) at confidence 0.9: score 0.9; "so four" is new (novelty 1) at
    # confidence 0.5: score 0.5 + 0.5 x 1 = 1.0, kept
    backend = ScriptedBackend(
        [ScriptRule("two plus two", [lp("two plus two", 0.9), lp("so four", 0.5)], cycle=True)],
        default="The answer is 4.",
    )
    solution = solve("two plus two", "gg", backend, paths=2, candidates=2, max_steps=1, answer_tokens=4)
    first = [n for n in solution.graph.nodes.values() if n.parent == 0]
    kept = {n.text: n.metadata["kept"] for n in first}
    assert kept == {"two plus two": False, "so four": True}
    assert [n.score for n in first] == [pytest.approx(0.9), pytest.approx(1.0)]


def test_without_reply_continuation_steps_are_reprompted_and_a_capped_chain_asks_for_its_answer():
    backend = ScriptedBackend(
        [ScriptRule("only the final answer", ["4"]), ScriptRule("Write step", [lp("two and two make four", 0.8)])]
    )
    backend.capabilities = dataclasses.replace(backend.capabilities, continue_message=False)
    solution = solve("What is two plus two?", "gg", backend, paths=1, candidates=1, max_steps=1)
    step, final = backend.calls
    assert step.stop == ("\n",)  # one step per request, cut at the step boundary
    assert final.messages[-2].content == "two and two make four"  # the chain so far, then the answer alone
    assert solution.answer == "4" and solution.usage["events"]["gg_steps_reprompted"] == 1
