"""What each method asks of the backend, request by request, worked out by hand: roles, sampling
settings, seeds (from positions), token limits, continuation. These pin the details that a method's
answer alone does not show."""

from __future__ import annotations

import json
import math

import pytest

from thoughtgraph.agents.runtime import derived_seed
from thoughtgraph.backends import Capabilities
from thoughtgraph.backends.scripted import ScriptedBackend, ScriptedResponse, ScriptRule, scripted_tokens
from thoughtgraph.reasoning import solve

NO_ERROR = json.dumps({"bad_steps": [], "analysis": "all right", "advice": "none"})


def analysis(*bad: int) -> str:
    return json.dumps({"bad_steps": list(bad), "analysis": f"bad {bad}", "advice": "redo"})


def lp(text: str, p: float = 0.9) -> ScriptedResponse:
    return ScriptedResponse(text, [math.log(p)] * len(scripted_tokens(text)))


def role(request) -> str:
    return request.messages[0].content.split(".")[0]


def test_thought_rollback_requests():
    backend = ScriptedBackend(
        [
            ScriptRule("Write step", ["a1", "b1", "b2", "c2", "The answer is 3."]),
            ScriptRule("Step 1: a1", [analysis(1)]),
            ScriptRule("Step 2: b2", [analysis(1, 2)]),
        ],
        default=NO_ERROR,
    )
    solution = solve("q?", "tr", backend, seed=5, max_solutions=1, max_incoming=1)
    writer, analyst = "You solve problems one step at a time", "You check reasoning"
    # (role, seed): positions are sibling indices along the path; a node's n-th child gets child index n
    expected = [
        (writer, derived_seed(5, "tr", 0)),  # a1, the question's first child
        (analyst, derived_seed(5, "tr-analyst", 0, 1)),  # a1 analysed: step 1 bad -> back to the question
        (writer, derived_seed(5, "tr", 1)),  # b1, the question's second child
        (analyst, derived_seed(5, "tr-analyst", 1, 1)),
        (writer, derived_seed(5, "tr", 1, 0)),  # b2
        (analyst, derived_seed(5, "tr-analyst", 1, 0, 1)),  # steps 1, 2 bad: 1 refused, 2 -> back to b1
        (writer, derived_seed(5, "tr", 1, 1)),  # c2, b1's second child
        (analyst, derived_seed(5, "tr-analyst", 1, 1, 1)),
        (writer, derived_seed(5, "tr", 1, 1, 0)),  # the answer
        (analyst, derived_seed(5, "tr-analyst", 1, 1, 0, 1)),  # the solution analysed too
    ]
    assert [(role(c), c.seed) for c in backend.calls] == expected
    assert all(c.temperature == (0.7 if role(c) == writer else 0.0) for c in backend.calls)
    assert all(c.max_tokens == (1000 if role(c) == writer else 256) for c in backend.calls)
    assert all("q?" in c.messages[-1].content for c in backend.calls)
    first, second = solution.graph.rollbacks()
    assert (first.metadata, second.metadata) == ({"bad_step": 1, "experience": 0}, {"bad_step": 2, "experience": 1})
    assert [x.bad_steps for x in solution.graph.experiences] == [[1], [1, 2]]
    assert [x.metadata["from"] for x in solution.graph.experiences] == [first.source, second.source]
    assert solution.usage["events"] == {"rollback_refused_by_limits": 1}
    assert solution.prompt_versions == {"step/thinker": 1, "analysis/chain": 1}


def test_thought_rollback_counts_each_invalid_step_index():
    backend = ScriptedBackend(
        [ScriptRule("Write step", ["s1", "The answer is 1."]), ScriptRule("You check", [analysis(0, 9, 1)])],
    )
    solution = solve("q?", "tr", backend, max_solutions=1)
    # 0 and 9 are out of range of a 1-step chain, in each of the two analyses (s1, then the solution)
    assert solution.usage["events"]["invalid_step_index"] == 2 + 2


def test_guided_by_gut_requests():
    backend = ScriptedBackend(
        [
            ScriptRule("Final answer: \\\\boxed\\{$", ["5}"]),
            ScriptRule("A one\\.\\n$", [lp("A too.", 0.5), lp("A two.")]),
            ScriptRule("q\\?$", [lp("B one.", 0.5), lp("A one.")]),
        ]
    )
    solution = solve("q?", "gg", backend, seed=3, paths=2, candidates=2, max_steps=2, early_iterations=1)
    root, step, cue = backend.calls  # one beam (2 paths / 2 candidates): one request per step, then the cue
    assert (root.n, root.temperature, root.top_p, root.seed) == (2, 1.0, 0.95, derived_seed(3, "gg", 0, 0))
    assert root.logprobs and root.max_tokens == 256 and root.stop == ("\n",) and not root.continue_final_message
    # iteration 1: the late temperature from early_iterations on, continuing the confident first step
    assert (step.n, step.temperature, step.seed) == (2, 0.6, derived_seed(3, "gg", 0, 1))
    assert step.continue_final_message and step.logprobs and step.messages[-1].content == "A one.\n"
    assert cue.messages[-1].content == "A one.\nA two.\nFinal answer: \\boxed{"  # the confident candidate
    assert (cue.max_tokens, cue.seed, cue.n) == (32, 3, 1)
    assert all(c.messages[1].content == "q?" for c in backend.calls)
    # both candidates of the last step are finished chains; only the kept one states an answer (via the cue)
    finals = [n for n in solution.graph.nodes.values() if n.depth == 2]
    assert sorted(n.text for n in finals) == ["A too.", "A two."]
    assert solution.answer == "5" and dict(solution.candidates) == {"5": pytest.approx(0.9)}


def test_self_consistency_and_best_of_n_requests():
    chains = ["So 5. The answer is 5.", "I think 5", "The answer is 6."]
    backend = ScriptedBackend([ScriptRule("You grade", ["0.4"]), ScriptRule("q\\?", chains)])
    solution = solve("q?", "sc", backend, seed=9, samples=3, temperature=0.8, top_p=0.9, chain_tokens=100)
    (request,) = backend.calls
    assert (request.n, request.temperature, request.top_p, request.seed, request.max_tokens) == (3, 0.8, 0.9, 9, 100)
    assert request.stop_pattern is not None and request.messages[-1].content == "q?"
    assert solution.usage["events"]["parse_failure"] == 1  # "I think 5" states no answer; its last number counts
    assert dict(solution.candidates) == {"5": 2, "6": 1}

    backend = ScriptedBackend([ScriptRule("You grade", ["0.4"]), ScriptRule("q\\?", chains)])
    solution = solve("q?", "bon", backend, seed=9, samples=3)
    judged = [c for c in backend.calls if role(c) == "You grade reasoning"]
    assert len(judged) == 3 and all(c.seed == 9 and c.max_tokens == 8 for c in judged)
    assert sorted(c.messages[-1].content.split("Step 1: ")[1].split("\n")[0] for c in judged) == sorted(chains)
    assert [solution.graph.nodes[i].score for i in (1, 2, 3)] == [0.4, 0.4, 0.4]


def test_chain_of_thought_asks_for_the_answer_alone_with_the_chain_as_history():
    backend = ScriptedBackend([ScriptRule("only the final answer", ["1,234"]), ScriptRule("q\\?", ["no answer here"])])
    solution = solve("q?", "cot", backend, seed=4, chain_tokens=64, answer_tokens=12)
    chain, final = backend.calls
    assert (chain.max_tokens, chain.seed, chain.temperature) == (64, 4, 0.0)
    assert [m.role for m in final.messages] == ["system", "user", "assistant", "user"]
    assert final.messages[2].content == "no answer here" and final.messages[1].content == "q?"
    assert (final.max_tokens, final.seed) == (12, 4) and final.constraint is not None
    assert solution.answer == "1234"  # constrained reply taken as it is, thousands separator dropped
    assert solution.graph.nodes[1].answer == "1234" and solution.graph.chosen == [1]
    assert dict(solution.candidates) == {"1234": 1} and solution.reasoning == "no answer here"
    stated = solve("q?", "cot", ScriptedBackend([ScriptRule("q\\?", ["2 + 2 = 4. The answer is 4."])]))
    assert dict(stated.candidates) == {"4": 1} and stated.graph.nodes[1].text == "2 + 2 = 4. The answer is 4."
    assert stated.graph.nodes[1].answer == "4" and stated.usage["calls"] == 1
    assert solution.usage["events"]["parse_failure"] == 1
    assert solution.prompt_versions == {"cot/solve": 1, "cot/final_answer": 1}


def test_boosting_of_thoughts_requests():
    import random

    from thoughtgraph.reasoning.bot import POOL

    backend = ScriptedBackend(
        [
            ScriptRule("You grade[\\s\\S]*Score of step 1", ["0.4"]),
            ScriptRule("You grade", ["0.8"]),
            ScriptRule("You check", [analysis(1), NO_ERROR]),
            ScriptRule("Write step 1\\.", ["x1", "y1"], cycle=True),
            ScriptRule("Write step 2\\.", ["The answer is 3.", "So the answer is 3."], cycle=True),
        ]
    )
    config = {"iterations": 3, "trees": 1, "max_sinks": 2, "max_depth": 3, "policies": ("bfs",),
              "aggregation": "greedy", "experience_cap": 1}  # fmt: skip
    solution = solve("q?", "bot", backend, seed=11, **config)
    writer, judge, analyst = "You solve problems one step at a time", "You grade reasoning", "You check reasoning"
    expected = []
    for iteration in (0, 1):  # the second analysis finds no error: no third iteration
        draw = random.Random(derived_seed(11, "bot", iteration, 0))  # temperature, then top_p, each iteration
        temperature, top_p = draw.choice(POOL), draw.choice(POOL)
        for expansion in (0, 1):  # the question, then x1 (BFS: the older open node); its two finals end the tree
            expected.append((writer, 2, temperature, top_p, derived_seed(11, "bot", iteration, 0, expansion, 0)))
            expected += [(judge, 1, 0.2, 1.0, derived_seed(11, "judge", iteration, 0, expansion, i)) for i in (0, 1)]
        expected.append((analyst, 1, 0.3, 1.0, derived_seed(11, "analyst", iteration)))
    observed = [(role(c), c.n, c.temperature, c.top_p, c.seed) for c in backend.calls]
    assert sorted(observed) == sorted(expected)
    second_iteration = [c for c in backend.calls if role(c) == writer][2:]
    assert all("bad (1,)" in c.messages[-1].content for c in second_iteration)  # the experience, capped at 1
    nodes = list(solution.graph.nodes.values())[1:]
    assert {(n.metadata["iteration"], n.metadata["tree"], n.metadata["policy"]) for n in nodes} == {
        (0, 0, "bfs"),
        (1, 0, "bfs"),
    }
    assert [n.score for n in nodes[:4]] == [0.4, 0.4, 0.8, 0.8]
    assert len(solution.graph.experiences) == 2 and solution.answer == "3"
    assert solution.prompt_versions == {"step/thinker": 1, "step/judge": 1, "analysis/chain": 1}


def test_tree_of_thoughts_requests():
    backend = ScriptedBackend(
        [
            ScriptRule("You grade[\\s\\S]*Step 1: low\\n[\\s\\S]*Score of step 1", ["0.3"]),
            ScriptRule("You grade[\\s\\S]*Score of step 1", ["0.9"]),
            ScriptRule("You grade[\\s\\S]*answer is 5", ["0.2"]),
            ScriptRule("You grade", ["0.7"]),
            ScriptRule("Write step 1\\.", ["low", "high"]),
            ScriptRule("Write step 2\\.", ["The answer is 5.", "So the answer is 6."]),
        ]
    )
    solution = solve("q?", "tot", backend, seed=13, proposals=2, beam=1, max_depth=2, temperature=0.5)
    writer, judge = "You solve problems one step at a time", "You grade reasoning"
    expected = [
        (writer, 2, 0.5, 128, derived_seed(13, "tot")),  # from the question
        (judge, 3, 0.7, 8, derived_seed(13, "tot-value", 0)),  # "low": 3 x 0.3, three valuations summed
        (judge, 3, 0.7, 8, derived_seed(13, "tot-value", 1)),  # "high": 3 x 0.9, the one state kept (beam 1)
        (writer, 2, 0.5, 128, derived_seed(13, "tot", 1)),  # from "high", the question's second child
        (judge, 3, 0.7, 8, derived_seed(13, "tot-value", 1, 0)),
        (judge, 3, 0.7, 8, derived_seed(13, "tot-value", 1, 1)),
    ]
    assert sorted((role(c), c.n, c.temperature, c.max_tokens, c.seed) for c in backend.calls) == sorted(expected)
    assert solution.answer == "6"  # 0.7 > 0.2
    assert [solution.graph.nodes[i].text for i in solution.graph.chosen] == ["high", "So the answer is 6."]


def test_tree_of_thoughts_value_words():
    backend = ScriptedBackend(
        [
            ScriptRule("Evaluate whether[\\s\\S]*Step 1: a\\n", ["impossible"]),
            ScriptRule("Evaluate whether[\\s\\S]*Step 1: b\\n", ["sure"]),
            ScriptRule("Evaluate whether", ["likely"]),
            ScriptRule("Write step 1\\.", ["a", "b", "c"]),
        ]
    )
    solution = solve("q?", "tot", backend, proposals=3, beam=2, max_depth=1, value_mode="words")
    scores = [solution.graph.nodes[i].score for i in (1, 2, 3)]
    assert scores == pytest.approx([3 * 0.001, 3 * 20.0, 3 * 1.0])  # ToT's Game of 24 values, three summed
    valued = [c for c in backend.calls if c.messages[0].content.startswith("Evaluate")]
    assert all(c.max_tokens == 4 and set(c.constraint.choices) == {"sure", "likely", "impossible"} for c in valued)

    class FreeText(ScriptedBackend):
        capabilities = Capabilities(logprobs=True, constraints=frozenset({"regex"}))

    free = FreeText([ScriptRule("Evaluate whether", ["Maybe."]), ScriptRule("Write step 1\\.", ["a"])])
    result = solve("q?", "tot", free, proposals=1, beam=1, max_depth=1, value_mode="words")
    # each of the three unreadable valuations counts as the lowest value and as a parse failure
    assert result.graph.nodes[1].score == pytest.approx(3 * 0.001) and result.usage["events"]["parse_failure"] == 3


def finished_beams() -> ScriptedBackend:
    """Four single-beam subtrees that finish at once, with final-step confidences 0.95, 0.3, 0.35 and 0.05."""
    answers = [lp("The answer is 7.", 0.95), lp("The answer is 8.", 0.3), lp("So the answer is 8.", 0.35)]
    return ScriptedBackend([ScriptRule("q\\?$", [*answers, lp("The answer is 9.", 0.05)])])


def test_guided_by_gut_votes_by_confidence_majority_or_top1_above_the_floor():
    config = {"paths": 4, "candidates": 1, "max_steps": 3}
    by_confidence = solve("q?", "gg", finished_beams(), **config)
    assert by_confidence.answer == "7"  # 0.95 against 0.3 + 0.35 = 0.65; the 0.05 beam is under the 0.1 floor
    assert by_confidence.candidates == {"7": 0.95, "8": 0.3 + 0.35}
    assert by_confidence.usage["events"]["below_confidence_floor"] == 1
    assert by_confidence.reasoning == "The answer is 7."
    majority = solve("q?", "gg", finished_beams(), vote="majority", **config)
    assert majority.answer == "8" and dict(majority.candidates) == {"7": 1, "8": 2}
    assert majority.reasoning == "So the answer is 8."  # the more confident of the two 8s
    top1 = solve("q?", "gg", finished_beams(), vote="top1", **config)
    assert top1.answer == "7" and dict(top1.candidates) == {"7": 1.0, "8": 2.0}
    no_floor = solve("q?", "gg", finished_beams(), confidence_floor=0.05, **config)
    assert no_floor.candidates["9"] == pytest.approx(0.05) and "below_confidence_floor" not in no_floor.usage["events"]
    assert [no_floor.graph.nodes[i].text for i in no_floor.graph.chosen] == ["The answer is 7."]


def test_guided_by_gut_keeps_the_step_tokens_and_prunes_for_good():
    backend = ScriptedBackend([ScriptRule("one step per line", [lp("Think first."), lp("The answer is 2.")])])
    solution = solve("q?", "gg", backend, paths=2, candidates=2, max_steps=4)
    assert solution.graph.nodes[1].metadata == {"subtree": 0, "tokens": ["Think", " first."], "kept": True}
