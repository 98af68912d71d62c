"""FL and ML-systems components as agent tools: ``list_tools()``, ``get_tool(name).invoke({...})``."""

from agents.tools import lbbsp, nvfp4, smoothing  # noqa: F401 - importing registers the tools
from agents.tools.registry import FIDELITY, get_tool, list_tools

__all__ = ["FIDELITY", "get_tool", "list_tools"]
