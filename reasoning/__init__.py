"""Reasoning methods over the shared backend layer. ``solve(problem, method=..., backend=...)``."""

from thoughtgraph.reasoning.api import METHODS, solve, solve_async, stream_thoughts
from thoughtgraph.reasoning.solution import Solution

__all__ = ["METHODS", "Solution", "solve", "solve_async", "stream_thoughts"]
