"""``thoughtgraph serve``: every reasoning method behind an OpenAI-compatible endpoint."""

from thoughtgraph.server.app import create_app

__all__ = ["create_app"]
