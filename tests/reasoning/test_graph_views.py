"""The thought graph's JSON, Mermaid and Solution views, expected output written by hand."""

from __future__ import annotations

import json
from collections import Counter

from thoughtgraph.reasoning.graph import ROOT, Experience, ThoughtGraph
from thoughtgraph.reasoning.solution import Solution


def small_graph() -> ThoughtGraph:
    graph = ThoughtGraph('Is "2 + 2" four?')
    first = graph.add_thought(ROOT, "Add them:\n2 + 2 = 4.", score=0.75)
    final = graph.add_thought(first.id, "The answer is 4.", answer="4", confidence=0.9, metadata={"tree": 1})
    graph.add_rollback(final.id, first.id, bad_step=2)
    graph.experiences.append(Experience(["Add them"], "fine", [2], {"from": final.id}))
    graph.chosen = [first.id, final.id]
    return graph


def test_mermaid_view():
    assert small_graph().to_mermaid() == "\n".join(
        [
            "graph TD",
            '    n0["Question"]',
            '    n1["Add them: 2 + 2 = 4. (0.75)"]',
            '    n2["The answer is 4."]',
            "    n0 --> n1",
            "    n1 --> n2",
            "    n2 -.->|rollback| n1",
            "    classDef chosen stroke:#1f5fbf,stroke-width:3px",
            "    class n1,n2 chosen",
        ]
    )


def test_json_round_trip_keeps_everything():
    graph = small_graph()
    data = json.loads(graph.to_json())
    assert data["question"] == 'Is "2 + 2" four?' and data["chosen"] == [1, 2]
    assert [n["text"] for n in data["nodes"]] == ['Is "2 + 2" four?', "Add them:\n2 + 2 = 4.", "The answer is 4."]
    assert data["edges"][2] == {"source": 2, "target": 1, "kind": "rollback", "metadata": {"bad_step": 2}}
    assert data["experiences"] == [
        {"steps": ["Add them"], "feedback": "fine", "bad_steps": [2], "metadata": {"from": 2}}
    ]
    again = ThoughtGraph.from_dict(data)
    assert again.to_dict() == graph.to_dict()
    assert again.nodes[2].answer == "4" and again.nodes[2].metadata == {"tree": 1} and again.nodes[1].score == 0.75
    assert [e.kind for e in again.rollbacks()] == ["rollback"] and again.path(2) == [1, 2]


def test_solution_view_carries_the_graph_and_usage():
    graph = small_graph()
    solution = Solution("4", "Add them", "tr", Counter({"4": 2, "5": 1}), {"calls": 3}, {"tr": 1}, None, graph)
    data = solution.to_dict()
    assert data == {
        "answer": "4",
        "reasoning": "Add them",
        "method": "tr",
        "candidates": {"4": 2, "5": 1},
        "usage": {"calls": 3},
        "prompt_versions": {"tr": 1},
        "stopped_by": None,
        "graph": graph.to_dict(),
    }
    assert Solution("4", "", "cot", Counter(), {}, {}, "max_calls=1 reached", None).to_dict()["graph"] is None


def test_the_outcome_of_a_graph_is_the_majority_of_its_final_steps_with_the_first_such_chain():
    from thoughtgraph.reasoning.graph import ThoughtGraph
    from thoughtgraph.reasoning.outcome import outcome_from_graph

    graph = ThoughtGraph("What is 2 + 2?")
    a = graph.add_thought(0, "Two and two")
    graph.add_thought(a.id, "make 5.", answer="5")  # node 2
    b = graph.add_thought(0, "Add them")
    graph.add_thought(b.id, "2 + 2 = 4.", answer="4")  # node 4: the first final that states the majority
    c = graph.add_thought(0, "Count up")
    graph.add_thought(c.id, "3, 4: it is 4.", answer="4")  # node 6
    graph.add_thought(c.id, "no answer here", answer="")  # an empty answer casts no vote
    outcome = outcome_from_graph(graph)
    assert outcome.answer == "4" and outcome.candidates == Counter({"4": 2, "5": 1})
    assert graph.chosen == [3, 4] and outcome.reasoning == "Add them\n2 + 2 = 4."
    empty = ThoughtGraph("?")
    empty.add_thought(0, "thinking")
    nothing = outcome_from_graph(empty)
    assert nothing.answer is None and nothing.reasoning == "" and empty.chosen == [] and not nothing.candidates
