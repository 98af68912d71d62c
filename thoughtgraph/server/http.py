"""uvicorn, configured for a network that holds slow and half-open clients.

uvicorn closes idle keep-alive connections but waits for ever on a connection that never completes a request
head: 300 clients that connect and send nothing (or half a header) hold 300 connections. ``DeadlineH11``
gives every connection ``header_timeout_seconds`` to deliver a whole request head (on a kept-alive
connection: counted from the end of the last response) and closes it otherwise. Stalled bodies are the app's
part (``read_body``); the number of connections is bounded by uvicorn's ``limit_concurrency`` (503 beyond).
"""

from __future__ import annotations

from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from thoughtgraph.server.limits import ServeLimits


def deadline_protocol(timeout: float) -> type[H11Protocol]:
    """An h11 protocol class that closes a connection whose request head is not complete within ``timeout``."""

    class DeadlineH11(H11Protocol):
        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.loop.call_later(timeout, self._close_unless_a_request_began, None)

        def on_response_complete(self) -> None:
            finished = self.cycle  # taken before uvicorn starts a pipelined next request
            super().on_response_complete()
            self.loop.call_later(timeout, self._close_unless_a_request_began, finished)

        def _close_unless_a_request_began(self, last: Any) -> None:
            """``last``: the request cycle current when the deadline was set (None: none yet)."""
            if self.cycle is last and not self.transport.is_closing():
                self.transport.close()

    return DeadlineH11


def run_server(app: Any, *, host: str, port: int, limits: ServeLimits) -> None:
    """Serve ``app`` until SIGTERM/Ctrl-C (in-flight runs then get 10 s to finish before they are cancelled)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        http=deadline_protocol(limits.header_timeout_seconds),
        limit_concurrency=limits.max_connections,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
        h11_max_incomplete_event_size=16 * 1024,
        server_header=False,
    )
    uvicorn.Server(config).run()
