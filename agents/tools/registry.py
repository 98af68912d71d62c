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
from dataclasses import dataclass
from typing import Literal, TypeVar, get_type_hints

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, ValidationError

from thoughtgraph.agents.tools.validation import InputError, check_finite_output

Fidelity = Literal["faithful", "approximation"]
Effects = Literal["pure", "reads_files", "changes_state"]
"""What calling a tool can do beyond computing its result: nothing (``pure``); read files from the attachments
folder (``reads_files``); change something outside the call (``changes_state``: an agent calls it only after a
person approves)."""
In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)


@dataclass(frozen=True)
class ToolSpec:
    """One agent tool, declared by the ``@tool`` decorator on its function."""

    name: str
    inputs: type[BaseModel]
    """What arguments validate against (once, in ``call_tool`` and the langchain tool)."""
    outputs: type[BaseModel]
    """What a result validates against (the function's return annotation)."""
    fidelity: Fidelity
    """``faithful`` to its paper, or an ``approximation``; the docstring says which and why."""
    effects: Effects
    function: Callable[[BaseModel], BaseModel]
    as_tool: BaseTool
    """The langchain-core tool an agent graph binds."""
    run: Callable[[dict], dict]
    """JSON arguments in, JSON result out; ToolError for anything wrong."""

    @property
    def needs_approval(self) -> bool:
        return self.effects == "changes_state"


TOOLS: dict[str, ToolSpec] = {}


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


def tool(
    name: str, inputs: type[In], fidelity: Fidelity, effects: Effects = "pure"
) -> Callable[[Callable[[In], Out]], Callable[[In], Out]]:
    """Register ``function(inputs) -> output model`` as the tool ``name``; the function stays callable."""

    def register(function: Callable[[In], Out]) -> Callable[[In], Out]:
        if name in TOOLS:
            raise ValueError(f"tool {name!r} is registered twice")
        if f"{fidelity}" not in (function.__doc__ or "").lower():
            raise ValueError(f"tool {name!r}: its docstring must say it is {fidelity} and why")
        if effects not in ("pure", "reads_files", "changes_state"):
            raise ValueError(f"tool {name!r}: effects must be pure, reads_files or changes_state, got {effects!r}")
        run = _runner(name, inputs, function)

        def call(**arguments: object) -> dict:
            try:
                return run(arguments)
            except ToolError as error:
                raise ToolException(str(error)) from None

        # The schema goes to langchain as JSON Schema (what models see), not as the pydantic model: langchain
        # would validate the arguments itself, and every check - files included - would then run twice.
        as_tool = StructuredTool.from_function(
            func=call,
            name=name,
            description=(function.__doc__ or "").strip(),
            args_schema=inputs.model_json_schema(),
            handle_tool_error=_as_tool_message,
        )
        outputs = get_type_hints(function)["return"]
        TOOLS[name] = ToolSpec(name, inputs, outputs, fidelity, effects, function, as_tool, run)  # type: ignore[arg-type]
        return function

    return register


def list_tools() -> list[str]:
    return sorted(TOOLS)


def tool_spec(name: str) -> ToolSpec:
    if name not in TOOLS:
        raise KeyError(f"no tool named {name!r}; tools: {', '.join(list_tools())}")
    return TOOLS[name]


def get_tool(name: str) -> BaseTool:
    """The langchain-core tool ``name``, for an agent graph."""
    return tool_spec(name).as_tool


def call_tool(name: str, arguments: dict) -> dict:
    """Run a tool from Python: its JSON result, or ``ToolError`` with the message an agent would get."""
    return tool_spec(name).run(arguments)
