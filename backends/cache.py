"""A persistent request cache in SQLite, so reruns are reproducible and cost nothing.

Keyed by the full request (messages or prompt, sampling parameters, seed, constraint) plus the
model identity. Only deterministic requests are stored (temperature 0, or an explicit seed):
caching an unseeded sample would silently turn "draw again" into "repeat the last draw".
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from thoughtgraph.backends.errors import BackendConfigError
from thoughtgraph.backends.types import Request, Result

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    result TEXT NOT NULL,
    created REAL NOT NULL
)
"""


class RequestCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise BackendConfigError(f"the cache {self.path} is a folder; give a file path (or run without a cache)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as error:
            raise BackendConfigError(
                f"the cache {self.path} cannot be used ({error}): move it aside or run without a cache"
            ) from None
        self._lock = threading.Lock()

    def get(self, model_id: str, request: Request) -> Result | None:
        if not request.is_deterministic:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT result FROM results WHERE key = ?", (request.cache_key(model_id),)
            ).fetchone()
        if row is None:
            return None
        result = Result.from_dict(json.loads(row[0]))
        result.usage.from_cache = True
        result.usage.latency_seconds = 0.0
        return result

    def put(self, model_id: str, request: Request, result: Result) -> None:
        if not request.is_deterministic:
            return
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?)",
                (
                    request.cache_key(model_id),
                    model_id,
                    json.dumps(request.to_dict(), default=str),
                    json.dumps(result.to_dict()),
                    time.time(),
                ),
            )

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
