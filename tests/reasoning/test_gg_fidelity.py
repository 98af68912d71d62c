"""GG as in the reference: one continuing chain of thought, the minimum step length while decoding, the
final-answer cue at the cap, novelty over the problem's and the beam's tokens."""

from __future__ import annotations

import math

from thoughtgraph.backends import Capabilities
from thoughtgraph.backends.scripted import ScriptedBackend, ScriptedResponse, ScriptRule, scripted_tokens
from thoughtgraph.reasoning import solve


def lp(text: str, p: float = 0.9) -> ScriptedResponse:
    return ScriptedResponse(text, [math.log(p)] * len(scripted_tokens(text)))


def test_each_step_continues_the_same_assistant_message():
    backend = ScriptedBackend([ScriptRule("one step per line", [lp("First step."), lp("The answer is \\boxed{4}.")])])
    solve("What is 2 + 2?", "gg", backend, paths=1, candidates=1)
    first, second = backend.calls
    assert [m.role for m in first.messages] == ["system", "user"] and not first.continue_final_message
    assert [m.role for m in second.messages] == ["system", "user", "assistant"]
    assert second.continue_final_message and second.messages[-1].content == "First step.\n"
    assert all("Write step" not in m.content for c in backend.calls for m in c.messages)


def test_the_minimum_step_length_holds_while_decoding_and_nothing_past_the_step_is_billed():
    # tokens: "a" "\nb" " c" " d" "\ne" " f": the boundary in token 2 is too early for a 3-token minimum
    backend = ScriptedBackend([ScriptRule("one step per line", [lp("a\nb c d\ne f"), lp("\\boxed{1}")])])
    solution = solve("q?", "gg", backend, paths=1, candidates=1, min_step_tokens=3, max_steps=2)
    step = solution.graph.nodes[1]
    assert step.text == "a\nb c d"
    assert backend.calls[0].min_tokens == 3
    # billed as an engine bills: the 5 tokens sampled up to the one holding the boundary, then "\\boxed{1}"
    assert solution.usage["completion_tokens"] == 5 + 1


def test_at_the_step_cap_the_final_answer_cue_is_appended_and_the_chain_continued():
    backend = ScriptedBackend(
        [
            ScriptRule("Final answer: \\\\boxed\\{$", ["42}"]),
            ScriptRule("one step per line", [lp("Think."), lp("More.")]),
        ]
    )
    solution = solve("q?", "gg", backend, paths=1, candidates=1, max_steps=2)
    cue = backend.calls[-1]
    assert cue.continue_final_message and cue.messages[-1].content == "Think.\nMore.\nFinal answer: \\boxed{"
    assert solution.answer == "42"


def test_novelty_counts_tokens_of_the_problem_and_the_beam_not_the_instructions():
    backend = ScriptedBackend([ScriptRule("one step per line", [lp("careful gamma"), lp(" gamma \\boxed{1}")])])
    solution = solve("alpha beta", "gg", backend, paths=1, candidates=1)
    first, second = solution.graph.nodes[1], solution.graph.nodes[2]
    assert first.novelty == 1.0  # "careful" is in the system prompt, which is not the problem
    assert second.novelty == 0.5  # the token " gamma" was on the beam already, " \boxed{1}" is new


def test_backends_that_cannot_continue_a_message_get_the_step_prompt_counted():
    class NoContinuation(ScriptedBackend):
        capabilities = Capabilities(logprobs=True, constraints=frozenset({"regex"}))

    backend = NoContinuation([ScriptRule("Write step", [lp("The answer is 4.")])])
    solution = solve("q?", "gg", backend, paths=1, candidates=1)
    assert solution.answer == "4"
    assert solution.usage["events"]["gg_steps_reprompted"] == 1


def test_without_a_tokenizer_novelty_compares_lower_cased_words():
    class Remote(ScriptedBackend):  # like an OpenAI-compatible server: token strings come back, no tokenizer here
        def token_pieces(self, text: str) -> None:
            return None

    backend = Remote([ScriptRule("one step per line", [lp("Alpha gamma"), lp(" gamma \\boxed{1}")])])
    solution = solve("alpha beta", "gg", backend, paths=1, candidates=1)
    first, second = solution.graph.nodes[1], solution.graph.nodes[2]
    assert first.novelty == 0.5  # "Alpha" is the problem's word "alpha"; "gamma" is new
    assert second.novelty == 0.5  # "gamma" is on the beam; "\boxed{1}" is new


def test_a_step_request_asks_for_one_step_of_step_tokens_ending_at_the_boundary():
    backend = ScriptedBackend([ScriptRule("one step per line", [lp("First step."), lp("The answer is \\boxed{4}.")])])
    solve("What is 2 + 2?", "gg", backend, paths=1, candidates=1, step_tokens=40)
    first = backend.calls[0]
    assert first.max_tokens == 40 and "\n" in first.stop  # a step ends at the line boundary
