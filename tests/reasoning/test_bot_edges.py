"""Boosting of Thoughts' pure pieces at their edges, worked out by hand: which open node each growth policy picks,
how the two aggregations break ties and treat unscored steps, and that the seed decides the trees' policies."""

from thoughtgraph.agents.runtime import Budget
from thoughtgraph.backends.scripted import ScriptedBackend
from thoughtgraph.reasoning.bot import BoTConfig, aggregate_best_first, aggregate_greedy, next_to_grow, plan_tree
from thoughtgraph.reasoning.context import RunContext


def context_with(*specs):
    """A graph built from (parent index, score) pairs; index 0 is the question."""
    context = RunContext("q", ScriptedBackend(default="x"), Budget())
    ids = [0]
    for parent, score in specs:
        ids.append(context.add_thought(ids[parent], f"s{len(ids)}", score=score).id)
    return context, ids


def test_each_growth_policy_picks_its_open_node():
    # 1 (0.2) and 2 (0.9) under the question; 3 (None) and 4 (0.5) under 1: the deepest level is {3, 4}
    context, ids = context_with((0, 0.2), (0, 0.9), (1, None), (1, 0.5))
    open_nodes = [ids[3], ids[4], ids[2]]  # in the order they were opened
    assert next_to_grow(context.graph, open_nodes, "dfs") == ids[2]  # the newest
    assert next_to_grow(context.graph, open_nodes, "bfs") == ids[3]  # the oldest
    assert next_to_grow(context.graph, open_nodes, "leaf_best") == ids[4]  # best on the deepest level, not 2
    tied = [ids[3], ids[4]]
    context.graph.nodes[ids[3]].score = 0.5
    assert next_to_grow(context.graph, tied, "leaf_best") == ids[3]  # a tie goes to the earlier node


def test_unscored_steps_count_as_zero_and_ties_go_to_the_earlier_chain():
    context, ids = context_with((0, None), (0, 0.0), (0, 0.4))
    assert aggregate_greedy(context, [[ids[1]], [ids[2]]]) == [ids[1]]  # None and 0.0 tie: the earlier
    assert aggregate_greedy(context, [[ids[1]], [ids[3]]]) == [ids[3]]  # None counts 0, below 0.4
    assert aggregate_greedy(context, []) == []
    assert aggregate_best_first(context, [ids[1], ids[2]]) == [ids[1]]  # equal sums: the first found
    assert aggregate_best_first(context, []) == []


def test_the_seed_decides_the_trees_policies():
    config = BoTConfig(trees=15)
    policies = {seed: [plan_tree(config, seed, 0, tree).policy for tree in range(15)] for seed in (0, 1, 2)}
    assert policies[0] == [plan_tree(config, 0, 5, tree).policy for tree in range(15)]  # fixed across iterations
    assert len({tuple(p) for p in policies.values()}) > 1  # other seeds, other draws
