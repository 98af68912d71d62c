"""A crafted diagnosis session file: its checkpoint names ``os.system`` with a command that would create a
canary file. ``thoughtgraph diagnose --list`` (the real command, in its own process) must refuse it with a
clear message and run nothing; the same file under LangGraph's default serializer does run the command,
which shows the file is a real attack and not a malformed one."""

from __future__ import annotations

import asyncio
import os
import pickle
import sqlite3
import subprocess
import sys
from pathlib import Path

import ormsgpack
import pytest
from langgraph.checkpoint.serde.jsonplus import (
    EXT_CONSTRUCTOR_KW_ARGS,
    EXT_CONSTRUCTOR_POS_ARGS,
    EXT_CONSTRUCTOR_SINGLE_ARG,
)
from langgraph.graph import StateGraph
from typing_extensions import TypedDict

from thoughtgraph.agents.diagnosis.sessions import SessionSerializer, UnsafeSessionError, open_checkpointer, thread_ids

pytestmark = pytest.mark.integration  # the CLI as a subprocess

THOUGHTGRAPH = str(Path(sys.executable).with_name("thoughtgraph"))


class Plain(TypedDict, total=False):
    note: str


async def _write_session(db: Path, thread: str = "victim") -> None:
    graph = StateGraph(Plain)
    graph.add_node("write", lambda state: {"note": "ok"})
    graph.set_entry_point("write")
    async with open_checkpointer(db) as saver:
        await graph.compile(checkpointer=saver).ainvoke({}, {"configurable": {"thread_id": thread}})


def craft(db: Path, command: str) -> None:
    """A real session file whose every checkpoint now holds ``os.system(command)`` as a channel value."""
    asyncio.run(_write_session(db))
    payload = ormsgpack.Ext(EXT_CONSTRUCTOR_POS_ARGS, ormsgpack.packb(["os", "system", [command]]))
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT rowid, checkpoint FROM checkpoints WHERE type = 'msgpack'").fetchall()
        assert rows
        for rowid, blob in rows:
            checkpoint = ormsgpack.unpackb(blob, option=ormsgpack.OPT_NON_STR_KEYS, ext_hook=lambda c, d: None)
            checkpoint["channel_values"] = {**checkpoint.get("channel_values", {}), "note": payload}
            connection.execute("UPDATE checkpoints SET checkpoint = ? WHERE rowid = ?",
                               (ormsgpack.packb(checkpoint, option=ormsgpack.OPT_NON_STR_KEYS), rowid))  # fmt: skip


def test_a_crafted_session_file_runs_nothing_when_listed_and_is_refused_by_name(tmp_path):
    canary = tmp_path / "canary"
    db = tmp_path / "sessions.sqlite"
    craft(db, f"touch {canary}")
    listed = subprocess.run([THOUGHTGRAPH, "diagnose", "--list", "--db", str(db)], capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert not canary.exists(), "the session file ran its command"
    assert listed.returncode == 2
    assert "os.system" in listed.stderr and "was not loaded" in listed.stderr
    resumed = subprocess.run([THOUGHTGRAPH, "diagnose", "--session", "victim", "--db", str(db), "--no-model"],
                             capture_output=True, text=True, timeout=120, input="")  # fmt: skip
    assert not canary.exists() and resumed.returncode == 2 and "os.system" in resumed.stderr


def test_the_same_file_under_langgraphs_default_serializer_does_run_the_command(tmp_path):
    """The control: what the attack did before sessions were read strictly."""
    canary, db = tmp_path / "canary", tmp_path / "sessions.sqlite"
    craft(db, f"touch {canary}")
    script = f"""
import asyncio, aiosqlite
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
async def main():
    async with aiosqlite.connect({str(db)!r}) as connection:
        async for _ in AsyncSqliteSaver(connection).alist(None):
            pass
asyncio.run(main())
"""
    subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120, check=True)
    assert canary.exists()


async def test_sessions_of_plain_data_still_load_and_list(tmp_path):
    db = tmp_path / "sessions.sqlite"
    await _write_session(db)
    async with open_checkpointer(db) as saver:
        assert isinstance(saver.serde, SessionSerializer)
        assert await thread_ids(saver) == ["victim"]
        state = await saver.aget({"configurable": {"thread_id": "victim"}})
        assert state["channel_values"]["note"] == "ok"


def test_the_serializer_refuses_every_constructor_kind_and_pickle(tmp_path):
    serializer = SessionSerializer()
    canary = tmp_path / "canary"
    for code in (EXT_CONSTRUCTOR_SINGLE_ARG, EXT_CONSTRUCTOR_POS_ARGS, EXT_CONSTRUCTOR_KW_ARGS):
        arguments = {"command": f"touch {canary}"} if code == EXT_CONSTRUCTOR_KW_ARGS else [f"touch {canary}"]
        if code == EXT_CONSTRUCTOR_SINGLE_ARG:
            arguments = f"touch {canary}"
        blob = ormsgpack.packb({"x": ormsgpack.Ext(code, ormsgpack.packb(["os", "system", arguments]))})
        with pytest.raises(UnsafeSessionError, match=r"os\.system"):
            serializer.loads_typed(("msgpack", blob))

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {canary}",))

    with pytest.raises(UnsafeSessionError, match="'pickle'"):  # our refusal, whatever LangGraph's default
        serializer.loads_typed(("pickle", pickle.dumps(Payload())))
    assert not canary.exists()


def test_session_ids_from_a_file_cannot_drive_the_terminal(tmp_path):
    db = tmp_path / "sessions.sqlite"
    asyncio.run(_write_session(db, thread="s1\x1b]0;owned\x07\x1b[2J"))
    listed = subprocess.run([THOUGHTGRAPH, "diagnose", "--list", "--db", str(db)], capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert "\x1b" not in listed.stdout and "\x07" not in listed.stdout
    assert "s1\\x1b]0;owned\\x07\\x1b[2J" in listed.stdout
