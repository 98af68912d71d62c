"""One registry of agent tools: plain functions with pydantic input and output, exposed as
langchain-core tools. An agent calls a tool by name with JSON arguments and gets JSON back::

    get_tool("lbbsp_batch_sizes").invoke({"global_batch": 256, "step_times": [...], ...})

Failures never escape as exceptions into an agent graph: invalid arguments and inputs a tool cannot
compute on come back as a tool error message (langchain's ``handle_tool_error``), starting with
``"tool error:"`` and naming the tool and what is wrong. Python callers who prefer exceptions use
``call_tool``, which raises ``ToolError`` with the same message. Results are checked before they
leave: no NaN or infinity ever reaches an agent or a JSON file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar, get_type_hints

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, ValidationError
from thoughtgraph.agents.tools.validation import InputError, check_finite_output

Fidelity = Literal["faithful", "approximation"]
In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)

_TOOLS: dict[str, BaseTool] = {}
_CALLS: dict[str, Callable[[dict], dict]] = {}
INPUTS: dict[str, type[BaseModel]] = {}
"""Each tool's input model: what arguments validate against (once, in ``call_tool`` and the tool)."""
OUTPUTS: dict[str, type[BaseModel]] = {}
"""Each tool's output model: what a result validates against."""
FIDELITY: dict[str, Fidelity] = {}


class ToolError(ValueError):
    """A tool refused its arguments or could not compute on them; the message says why."""

    def __init__(self, message: str, *, internal: bool = False) -> None:
        super().__init__(message)
        self.internal = internal
        """True when the failure is a bug in the tool rather than bad input (tests assert it never is)."""


def describe_validation_error(error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "arguments"
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}")
    return "; ".join(problems)


def _runner(name: str, inputs: type[In], function: Callable[[In], Out]) -> Callable[[dict], dict]:
    def run(arguments: dict) -> dict:
        try:
            parsed = inputs.model_validate(arguments)
        except ValidationError as error:
            raise ToolError(f"tool error: {name}: invalid arguments: {describe_validation_error(error)}") from None
        try:
            result = function(parsed).model_dump(mode="python")
            check_finite_output(result)
        except ValidationError as error:
            raise ToolError(f"tool error: {name}: {describe_validation_error(error)}") from None
        except InputError as error:
            raise ToolError(f"tool error: {name}: {error}") from None
        except MemoryError:
            raise ToolError(f"tool error: {name}: out of memory; use smaller inputs") from None
        except Exception as error:
            raise ToolError(f"tool error: {name}: internal {type(error).__name__}: {error}", internal=True) from None
        return result

    return run


def _as_tool_message(error: ToolException) -> str:
    return str(error)


def tool(name: str, inputs: type[In], fidelity: Fidelity) -> Callable[[Callable[[In], Out]], Callable[[In], Out]]:
    """Register ``function(inputs) -> output model`` as the tool ``name``; the function stays callable."""

    def register(function: Callable[[In], Out]) -> Callable[[In], Out]:
        if name in _TOOLS:
            raise ValueError(f"tool {name!r} is registered twice")
        if f"{fidelity}" not in (function.__doc__ or "").lower():
            raise ValueError(f"tool {name!r}: its docstring must say it is {fidelity} and why")
        run = _runner(name, inputs, function)

        def call(**arguments: object) -> dict:
            try:
                return run(arguments)
            except ToolError as error:
                raise ToolException(str(error)) from None

        # The schema goes to langchain as JSON Schema (what models see), not as the pydantic model: langchain
        # would validate the arguments itself, and every check - files included - would then run twice.
        _TOOLS[name] = StructuredTool.from_function(
            func=call,
            name=name,
            description=(function.__doc__ or "").strip(),
            args_schema=inputs.model_json_schema(),
            handle_tool_error=_as_tool_message,
        )
        _CALLS[name] = run
        INPUTS[name] = inputs
        OUTPUTS[name] = get_type_hints(function)["return"]
        FIDELITY[name] = fidelity
        return function

    return register


def list_tools() -> list[str]:
    return sorted(_TOOLS)


def get_tool(name: str) -> BaseTool:
    if name not in _TOOLS:
        raise KeyError(f"no tool named {name!r}; tools: {', '.join(list_tools())}")
    return _TOOLS[name]


def call_tool(name: str, arguments: dict) -> dict:
    """Run a tool from Python: its JSON result, or ``ToolError`` with the message an agent would get."""
    if name not in _CALLS:
        raise KeyError(f"no tool named {name!r}; tools: {', '.join(list_tools())}")
    return _CALLS[name](arguments)
