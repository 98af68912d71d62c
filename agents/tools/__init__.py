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
from thoughtgraph.agents.tools.registry import FIDELITY, get_tool, list_tools

__all__ = ["FIDELITY", "get_tool", "list_tools"]
