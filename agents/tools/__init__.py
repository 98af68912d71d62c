"""FL and ML-systems components as agent tools: ``list_tools()``, ``get_tool(name).invoke({...})``."""

from thoughtgraph.agents.tools import (  # noqa: F401 - importing registers the tools
    calibre,
    fedreview,
    lbbsp,
    model_check,
    nvfp4,
    pisces,
    remoe,
    smoothing,
    vfl,
)
from thoughtgraph.agents.tools.registry import TOOLS, ToolError, ToolSpec, call_tool, get_tool, list_tools, tool_spec

__all__ = ["TOOLS", "ToolError", "ToolSpec", "call_tool", "get_tool", "list_tools", "tool_spec"]
