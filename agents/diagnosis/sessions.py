"""Diagnosis sessions are LangGraph threads in a checkpointer: SQLite by default (one file under the user's
data folder, ``--db`` to choose another), Postgres when a ``postgresql://`` URL is given (needs
``pip install langgraph-checkpoint-postgres``). A killed process loses nothing that was checkpointed: the
thread resumes from its last completed step (a node that was running when the process died runs again).

A session file may come from someone else, so it is data, never code. LangGraph's default checkpoint
serializer rebuilds any Python object a checkpoint names (``os.system`` included) when the checkpoint is
read; sessions are read with ``SessionSerializer`` instead: LangGraph's strict msgpack mode (only its own
safe types), no pickle, and a checkpoint that names any other type is refused with ``UnsafeSessionError``
before anything of it is used. Diagnosis state is plain data (dicts, lists, strings, numbers), so nothing
of ours needs to be allowed.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.serde.event_hooks import SerdeEvent, register_serde_event_listener
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

SESSION_TYPES: tuple[tuple[str, ...], ...] = ()
"""Types beyond LangGraph's own safe set that a session checkpoint may hold: none (the state is plain data)."""


class UnsafeSessionError(ValueError):
    """A session store holds a checkpoint naming a type sessions never store; nothing of it was loaded."""


READABLE_ENCODINGS = ("null", "bytes", "bytearray", "json", "msgpack")
"""Every encoding LangGraph's serializer writes without pickle; a checkpoint in any other is refused."""


class SessionSerializer(JsonPlusSerializer):
    """Strict checkpoint serializer: LangGraph's safe types and ``SESSION_TYPES`` only, no pickle; any other
    type in a checkpoint raises ``UnsafeSessionError`` (LangGraph's strict mode alone would hand back the
    constructor's raw arguments in its place)."""

    def __init__(self) -> None:
        super().__init__(allowed_msgpack_modules=SESSION_TYPES or None, pickle_fallback=False)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        if data[0] not in READABLE_ENCODINGS:  # pickle above all: refused here, not left to LangGraph's defaults
            raise UnsafeSessionError(
                f"the session store holds a checkpoint encoded as {str(data[0])[:40]!r}, which diagnosis sessions "
                f"never write (only {', '.join(READABLE_ENCODINGS)}); it was not loaded (the file may have been "
                "crafted: delete it or the session)"
            )
        blocked: list[SerdeEvent] = []
        unregister = register_serde_event_listener(
            lambda event: blocked.append(event) if event["kind"].endswith("blocked") else None
        )
        try:
            value = super().loads_typed(data)
        finally:
            unregister()
        if blocked:
            names = sorted({".".join(filter(None, (e["module"], e["name"], e.get("method")))) for e in blocked})
            raise UnsafeSessionError(
                f"the session store holds a checkpoint naming {', '.join(names)[:200]}, which diagnosis sessions "
                "never store; it was not loaded (the file may have been crafted: delete it or the session)"
            )
        return value


def data_folder() -> Path:
    base = os.environ.get("THOUGHTGRAPH_HOME") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "thoughtgraph"
    )
    return Path(base)


def default_db() -> Path:
    return data_folder() / "diagnosis.sqlite"


@asynccontextmanager
async def open_checkpointer(db: str | Path | None = None) -> AsyncIterator[Any]:
    """An async checkpointer for ``db``: a SQLite file path (default: ``default_db()``) or a Postgres URL."""
    target = str(db) if db is not None else str(default_db())
    if target.startswith(("postgres://", "postgresql://")):
        try:
            from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        except ImportError:
            raise RuntimeError(
                "a Postgres session store needs `pip install langgraph-checkpoint-postgres psycopg[binary]`"
            ) from None
        async with AsyncPostgresSaver.from_conn_string(target, serde=SessionSerializer()) as saver:
            await saver.setup()
            yield saver
        return
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    Path(target).expanduser().parent.mkdir(parents=True, exist_ok=True)
    async with aiosqlite.connect(str(Path(target).expanduser())) as connection:
        saver = AsyncSqliteSaver(connection, serde=SessionSerializer())
        await saver.setup()
        yield saver


async def thread_ids(checkpointer: Any) -> list[str]:
    """Every session (thread) in the store, most recently active first."""
    latest: dict[str, str] = {}
    async for item in checkpointer.alist(None):
        thread = item.config["configurable"]["thread_id"]
        stamp = item.checkpoint.get("ts", "")
        if stamp > latest.get(thread, ""):
            latest[thread] = stamp
    return sorted(latest, key=lambda t: latest[t], reverse=True)
