"""Text for a terminal: model output is hostile by assumption, and a terminal obeys escape sequences.

``for_terminal`` shows every control character a model could use to move the cursor, rewrite the screen or
the window title, set the clipboard (OSC 52) or hide text (C0 and C1 controls, DEL, bidirectional
overrides) as a visible escape (``\\x1b``, ``\\u202e``); newlines and tabs stay. JSON output keeps the text
as it is (JSON escapes control characters itself).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_KEPT = {"\n", "\t"}


def _visible(character: str) -> str:
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_TABLE = {
    code: _visible(chr(code)) for code in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)] if chr(code) not in _KEPT
}
_TABLE.update({ord(c): _visible(c) for c in BIDI_CONTROLS})


def for_terminal(text: object) -> str:
    """``text`` with every terminal control character shown as a visible escape instead of obeyed."""
    return str(text).translate(_TABLE)


@contextmanager
def user_errors(*errors: type[Exception]) -> Iterator[None]:
    """Every command's error handling (``thoughtgraph`` and ``python -m thoughtgraph.evals``): an error of these
    types, a user's mistake, ends the command with its message, shown safely on a terminal, and exit status 2,
    never a traceback."""
    try:
        yield
    except errors as error:
        typer.secho(for_terminal(f"error: {error}"), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
