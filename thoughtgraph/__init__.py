"""thoughtgraph: LLM reasoning methods and agents on one graph-of-agents runtime."""

__version__ = "0.1.0"
