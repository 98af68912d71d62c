"""Files in a run folder, written without following links.

A run folder may be shared or unpacked from elsewhere; a symbolic link (or a hard link) planted there as
``results.json`` or ``samples.jsonl`` must not make a run write outside it. Whole files are written to a
fresh temporary file in the folder and renamed over the name (a rename replaces a link, it never writes
through it); logs that are appended to are opened with ``O_NOFOLLOW`` and must be plain files with one link.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


class RunFolderError(ValueError):
    """A run folder holds a link where a file the run writes should be; the message names it."""


def checked_run_folder(folder: Path) -> Path:
    """``folder``, created if missing; refused when it is itself a link."""
    if folder.is_symlink():
        raise RunFolderError(f"{folder} is a symbolic link; a run folder must be a real folder (remove the link)")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def refuse_link(path: Path) -> None:
    """RunFolderError when ``path`` is a symbolic link (a run reads and writes only its own files)."""
    if path.is_symlink():
        raise RunFolderError(f"{path} is a symbolic link; runs do not read or write through links (remove it)")


def write_file(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) through a temporary file and a rename: a link at ``path`` is
    replaced, never written through."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def open_log(path: Path) -> Iterator[IO[str]]:
    """``path`` opened for appending (never truncated), refused when it is a link or not a plain file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        handle = os.open(path, flags | os.O_NONBLOCK, 0o644)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise RunFolderError(f"{path} is a symbolic link; runs do not write through links (remove it)") from None
        raise
    info = os.fstat(handle)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(handle)
        what = "not a plain file" if not stat.S_ISREG(info.st_mode) else f"a file with {info.st_nlink} hard links"
        raise RunFolderError(f"{path} is {what}; runs write only their own files (remove it)")
    os.set_blocking(handle, True)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        yield out
