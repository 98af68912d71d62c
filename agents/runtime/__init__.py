"""The graph-of-agents runtime: agents, budgets, seeded randomness."""

from thoughtgraph.agents.runtime.agent import Agent, Reply
from thoughtgraph.agents.runtime.budget import Budget, BudgetExceeded
from thoughtgraph.agents.runtime.randomness import derived_seed, rng

__all__ = ["Agent", "Budget", "BudgetExceeded", "Reply", "derived_seed", "rng"]
