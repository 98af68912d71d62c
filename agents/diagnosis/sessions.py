"""Diagnosis sessions are LangGraph threads in a checkpointer: SQLite by default (one file under the user's
data folder, ``--db`` to choose another), Postgres when a ``postgresql://`` URL is given (needs
``pip install langgraph-checkpoint-postgres``). A killed process loses nothing that was checkpointed: the
thread resumes from its last completed step (a node that was running when the process died runs again)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any


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
        async with AsyncPostgresSaver.from_conn_string(target) as saver:
            await saver.setup()
            yield saver
        return
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    Path(target).expanduser().parent.mkdir(parents=True, exist_ok=True)
    async with AsyncSqliteSaver.from_conn_string(str(Path(target).expanduser())) as saver:
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
