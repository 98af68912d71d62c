"""A real ``thoughtgraph serve`` process for the attack tests, and a listener that records every request
that reaches it (the place an attacker would have the server send its key)."""

from __future__ import annotations

import http.server
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import thoughtgraph_serve

THOUGHTGRAPH = str(Path(sys.executable).with_name("thoughtgraph"))
CANARY_KEY = "sk-canary-5f1e0c2a9d7b4e3f"
SCRIPT = """
rules:
  - match: "6 times 7"
    responses: ["Step one: 6 times 7.\\nThe answer is 42."]
    cycle: true
default: "The answer is 42."
"""


class Listener:
    """An HTTP server on 127.0.0.1 that answers 200 to anything and records what reached it."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        recorded = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                recorded.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = _record

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def saw(self, text: str) -> bool:
        return any(text in str(r["headers"]) or text.encode() in r["body"] or text in r["path"] for r in self.requests)

    def close(self) -> None:
        self.server.shutdown()


@contextmanager
def canary_server(tmp_path: Path, *flags: str) -> Iterator[str]:
    """``thoughtgraph serve`` on a scripted backend, with ``OPENAI_API_KEY`` set to the canary key; afterwards,
    the server's log must not hold the key."""
    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT)
    environment = {**os.environ, "OPENAI_API_KEY": CANARY_KEY}
    log = tmp_path / "serve.log"
    with thoughtgraph_serve("--backend", f"scripted:{script}", *flags, log=log, env=environment) as url:
        yield url
    assert CANARY_KEY not in log.read_text(), "the server logged its key"
