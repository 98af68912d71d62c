"""thoughtgraph: LLM reasoning methods and agents on one graph-of-agents runtime.

The front door is ``from thoughtgraph import solve``; the layers are subpackages (``thoughtgraph.backends``,
``thoughtgraph.reasoning``, ``thoughtgraph.agents``, ``thoughtgraph.evals``, ``thoughtgraph.trainers``,
``thoughtgraph.prompts``). Importing one of them does not import the others: ``solve`` and its kin are
loaded on first use.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

try:
    __version__ = metadata.version("thoughtgraph")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout that was never installed
    __version__ = "0+unknown"

_FRONT_DOOR = {"solve", "solve_async", "stream_thoughts", "make_config", "METHODS"}


def __getattr__(name: str) -> Any:
    if name in _FRONT_DOOR:
        from thoughtgraph.reasoning import api

        return getattr(api, name)
    if name == "Solution":
        from thoughtgraph.reasoning.solution import Solution

        return Solution
    raise AttributeError(f"module 'thoughtgraph' has no attribute {name!r}")


__all__ = ["METHODS", "Solution", "__version__", "make_config", "solve", "solve_async", "stream_thoughts"]
