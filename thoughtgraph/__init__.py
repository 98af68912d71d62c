"""thoughtgraph: LLM reasoning methods and agents on one graph-of-agents runtime.

The front door is ``from thoughtgraph import solve``; the layers are subpackages (``thoughtgraph.backends``,
``thoughtgraph.reasoning``, ``thoughtgraph.agents``, ``thoughtgraph.evals``, ``thoughtgraph.trainers``,
``thoughtgraph.prompts``). Importing one of them does not import the others: ``solve`` and its kin are
loaded on first use.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

_LAYERS = ("backends", "prompts", "reasoning", "agents", "trainers", "evals")
_ROOT = Path(__file__).resolve().parent.parent


def _is_checkout(root: Path) -> bool:
    """A thoughtgraph checkout (or a copy of one, as mutation testing makes); an installed wheel has no
    pyproject.toml beside it."""
    project = root / "pyproject.toml"
    layers = all((root / layer / "__init__.py").is_file() for layer in _LAYERS)
    return layers and project.is_file() and 'name = "thoughtgraph"' in project.read_text(encoding="utf-8")


if _is_checkout(_ROOT):  # then ``thoughtgraph.<layer>`` is the folder beside this one, whichever copy is installed
    __path__.append(str(_ROOT))

try:
    __version__ = metadata.version("thoughtgraph")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout that was never installed
    __version__ = "0+unknown"

_FRONT_DOOR = {"solve", "solve_async", "stream_thoughts", "make_config", "METHODS", "MethodSpec", "Solution",
               "register_method"}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _FRONT_DOOR:
        from thoughtgraph import reasoning

        return getattr(reasoning, name)
    raise AttributeError(f"module 'thoughtgraph' has no attribute {name!r}")


__all__ = [
    "METHODS", "MethodSpec", "Solution", "__version__", "make_config", "register_method", "solve", "solve_async",
    "stream_thoughts",
]  # fmt: skip
