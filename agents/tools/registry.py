"""One registry of agent tools: plain functions with pydantic input and output, exposed as
langchain-core tools. An agent calls a tool by name with JSON arguments and gets JSON back::

    get_tool("lbbsp_batch_sizes").invoke({"global_batch": 256, "step_times": [...], ...})
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel

Fidelity = Literal["faithful", "approximation"]
In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)

_TOOLS: dict[str, BaseTool] = {}
FIDELITY: dict[str, Fidelity] = {}


def tool(name: str, inputs: type[In], fidelity: Fidelity) -> Callable[[Callable[[In], Out]], Callable[[In], Out]]:
    """Register ``function(inputs) -> output model`` as the tool ``name``; the function stays callable."""

    def register(function: Callable[[In], Out]) -> Callable[[In], Out]:
        if name in _TOOLS:
            raise ValueError(f"tool {name!r} is registered twice")
        if f"{fidelity}" not in (function.__doc__ or "").lower():
            raise ValueError(f"tool {name!r}: its docstring must say it is {fidelity} and why")

        def call(**arguments: object) -> dict:
            return function(inputs(**arguments)).model_dump(mode="json")

        _TOOLS[name] = StructuredTool.from_function(
            func=call, name=name, description=(function.__doc__ or "").strip(), args_schema=inputs
        )
        FIDELITY[name] = fidelity
        return function

    return register


def list_tools() -> list[str]:
    return sorted(_TOOLS)


def get_tool(name: str) -> BaseTool:
    if name not in _TOOLS:
        raise KeyError(f"no tool named {name!r}; tools: {', '.join(list_tools())}")
    return _TOOLS[name]
