"""Selection rules pinned with hand-computed expectations: SC's majority, BoN's best score, ToT's beam,
and seeds that follow a thought's position, not the order concurrent branches finished in."""

from __future__ import annotations

import asyncio
import random

from thoughtgraph.agents.runtime import Budget
from thoughtgraph.backends.scripted import ScriptedBackend, ScriptRule
from thoughtgraph.reasoning import solve
from thoughtgraph.reasoning.context import RunContext
from thoughtgraph.reasoning.graph import ROOT
from thoughtgraph.reasoning.tot import keep_best


def test_self_consistency_takes_the_majority_not_the_first_answer():
    chains = ["So 6. The answer is 6.", "So 5. The answer is 5.", "So 7. The answer is 7.", "Thus the answer is 5."]
    solution = solve("q?", "sc", ScriptedBackend([ScriptRule("q\\?", chains)]), samples=4)
    assert solution.answer == "5"  # 5 twice; 6 and 7 once; the first chain says 6
    assert dict(solution.candidates) == {"6": 1, "5": 2, "7": 1}
    assert solution.reasoning == "So 5. The answer is 5."  # the first chain that gave the majority answer
    assert solution.graph.chosen == [2]
    silent = solve("q?", "sc", ScriptedBackend([ScriptRule("q\\?", ["no number", "none either"])]), samples=2)
    assert silent.answer is None and not silent.candidates  # chains without answers do not vote
    assert silent.graph.chosen == [1] and silent.reasoning == "no number"


def test_best_of_n_keeps_the_best_scored_chain_and_breaks_ties_to_the_earlier_one():
    chains = ["First. The answer is 1.", "Second. The answer is 2.", "Third. The answer is 3."]
    scores = [
        ScriptRule("You grade[\\s\\S]*answer is 1", ["0.2"]),
        ScriptRule("You grade[\\s\\S]*answer is 2", ["0.9"]),
        ScriptRule("You grade[\\s\\S]*answer is 3", ["0.5"]),
    ]
    solution = solve("q?", "bon", ScriptedBackend([*scores, ScriptRule("q\\?", chains)]), samples=3)
    assert solution.answer == "2"  # 0.9 > 0.5 > 0.2
    assert solution.reasoning == "Second. The answer is 2." and solution.graph.chosen == [2]
    assert dict(solution.candidates) == {"2": 1}
    tied = [ScriptRule("You grade", ["0.5"]), ScriptRule("q\\?", chains)]
    assert solve("q?", "bon", ScriptedBackend(tied), samples=3).answer == "1"


def test_tree_of_thoughts_keeps_the_highest_scores():
    context = RunContext("q", ScriptedBackend(default="x"), Budget())
    ids = [context.add_thought(ROOT, f"s{i}", score=s).id for i, s in enumerate([0.3, 0.9, 0.5, 0.9])]
    assert keep_best(context, ids, 2) == [ids[1], ids[3]]  # the two 0.9s, the earlier first
    assert keep_best(context, ids, 3) == [ids[1], ids[3], ids[2]]


class JitteryScriptedBackend(ScriptedBackend):
    """The double with a random delay per request, so concurrent branches finish in a different order."""

    def __init__(self, *args, jitter_seed: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._jitter = random.Random(jitter_seed)

    async def _generate(self, requests):
        await asyncio.sleep(self._jitter.uniform(0, 0.01))
        return await super()._generate(requests)


def seeded_requests(method: str, jitter_seed: int, **config) -> list[int | None]:
    """The seeds of every request of a run (the double's cycling texts depend on arrival order; seeds must not)."""
    backend = JitteryScriptedBackend(
        [
            ScriptRule("You grade", ["0.6"]),
            ScriptRule("You check", ['{"bad_steps": [], "analysis": "ok", "advice": "none"}']),
            ScriptRule("Write step 1\\.", ["Add.", "Multiply."], cycle=True),
            ScriptRule("Write step", ["The answer is 4.", "So the answer is 4."], cycle=True),
            ScriptRule("Final answer: ", ["4}"]),
            ScriptRule("one step per line", ["Add.", "Multiply.", "Halve."], cycle=True),
        ],
        jitter_seed=jitter_seed,
    )
    solve("What is 2 + 2?", method, backend, seed=7, **config)
    return sorted(r.seed for r in backend.calls)


def test_seeds_follow_positions_so_a_rerun_asks_the_same_whatever_finishes_first():
    configs = {
        "bot": {"iterations": 1, "trees": 4, "max_sinks": 2},
        "tot": {"proposals": 2, "beam": 2, "max_depth": 2},
        "gg": {"paths": 8, "candidates": 2, "max_steps": 3},
    }
    for method, config in configs.items():
        first = seeded_requests(method, 0, **config)
        assert all(seeded_requests(method, jitter, **config) == first for jitter in (1, 2, 3)), method


def test_tot_value_seeds_belong_to_the_thought_not_to_its_arrival():
    def run(jitter_seed: int) -> list[tuple[str, int | None]]:
        backend = JitteryScriptedBackend(
            [
                ScriptRule("You grade[\\s\\S]*Step 2: (.*)", ["0.5"]),
                ScriptRule("You grade", ["0.6"]),
                ScriptRule("Step 1: Add\\.[\\s\\S]*Write step 2", ["Add more.", "Add less."]),
                ScriptRule("Step 1: Multiply\\.[\\s\\S]*Write step 2", ["Multiply more.", "Multiply less."]),
                ScriptRule("Write step 1\\.", ["Add.", "Multiply."]),
            ],
            jitter_seed=jitter_seed,
        )
        solve("What is 2 + 2?", "tot", backend, seed=7, proposals=2, beam=2, max_depth=2)
        return sorted((r.messages[-1].content, r.seed) for r in backend.calls)

    assert all(run(jitter) == run(0) for jitter in range(1, 8))


def test_worst_case_calls_are_exact_where_nothing_ends_early_and_bound_every_run():
    from thoughtgraph.reasoning.api import make_config

    endless = ScriptedBackend(
        [
            ScriptRule("You grade", ["0.5"]),
            ScriptRule("You check", ['{"bad_steps": [1], "analysis": "redo", "advice": "x"}']),
            ScriptRule("Write step|one step per line", ["Go on.", "Keep going.", "More."], cycle=True),
        ],
        default="no answer stated",
    )
    # ToT, 2 proposals, beam 2, depth 3, no final answer: 1 + 2 + 2 * (2 + 2 * 2) = 15 calls
    tot = solve("q?", "tot", endless, proposals=2, beam=2, max_depth=3)
    assert tot.usage["calls"] == make_config("tot", proposals=2, beam=2, max_depth=3).worst_case_calls() == 15
    # GG, 4 paths in 2 subtrees of one beam each, 3 steps: 2 beams x 3 steps + 2 answer cues = 8
    gg = solve("q?", "gg", endless, paths=4, candidates=2, max_steps=3)
    assert gg.usage["calls"] == make_config("gg", paths=4, candidates=2, max_steps=3).worst_case_calls() == 8
    tr = solve("q?", "tr", endless, max_steps=6, max_depth=3)
    assert tr.usage["calls"] <= make_config("tr", max_steps=6, max_depth=3).worst_case_calls()
    bot = solve("q?", "bot", endless, iterations=2, trees=2, max_expansions=2)
    assert bot.usage["calls"] <= make_config("bot", iterations=2, trees=2, max_expansions=2).worst_case_calls()
    assert make_config("bot").worst_case_calls() is None  # unbounded without max_expansions
    assert make_config("cot").worst_case_calls() == 2 and make_config("bon", samples=3).worst_case_calls() == 4
