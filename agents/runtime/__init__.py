"""The graph-of-agents runtime: agents, budgets, seeded randomness."""

from agents.runtime.agent import Agent, Reply
from agents.runtime.budget import Budget, BudgetExceeded
from agents.runtime.randomness import derived_seed, rng

__all__ = ["Agent", "Budget", "BudgetExceeded", "Reply", "derived_seed", "rng"]
