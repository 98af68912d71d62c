"""Reasoning methods over the shared backend layer. ``solve(problem, method=..., backend=...)``."""

from thoughtgraph.reasoning.api import make_config, solve, solve_async, stream_thoughts
from thoughtgraph.reasoning.methods import METHODS, register_method
from thoughtgraph.reasoning.solution import Solution
from thoughtgraph.reasoning.spec import MethodSpec

__all__ = [
    "METHODS",
    "MethodSpec",
    "Solution",
    "make_config",
    "register_method",
    "solve",
    "solve_async",
    "stream_thoughts",
]
