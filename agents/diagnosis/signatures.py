"""Error signatures: an error line with what varies between occurrences masked, so that the same failure
in two jobs gives the same string. Deterministic: timestamps are dropped; paths, addresses, hex ids, ranks
and numbers are masked, in that order."""

from __future__ import annotations

import re

_ERROR_LINE = re.compile(
    r"(error|exception|fatal|warn|watchdog|timed? ?out|killed|nan\b|overflow|failed|no space|"
    r"undefined symbol|denied|unreachable|reset by peer|too old)",
    re.IGNORECASE,
)
_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"), ""),
    (re.compile(r"(?:[A-Za-z]:)?(?:/[\w.+\-@]+){2,}/?"), "<path>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<addr>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b|\b[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"\b(rank|Rank|RANK|worker|node|client|gpu|GPU|cuda|device)[ :=_-]?\d+\b"), r"\1 <id>"),
    (re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
)
_ERROR_MESSAGE = re.compile(r"\b\w+(Error|Exception)\b|\berror:|\bERROR\b|\bFATAL\b")
"""What marks a line of a prose report as a quoted error message."""
MAX_LINE_CHARS = 400


def normalise(line: str) -> str:
    """The signature of one line (at most ``MAX_LINE_CHARS`` of it are read)."""
    text = line[:MAX_LINE_CHARS]
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text.strip(" :")


def error_lines(text: str) -> list[str]:
    """The lines of a log that report an error or warning, in order."""
    return [line for line in text.splitlines() if line.strip() and _ERROR_LINE.search(line[:MAX_LINE_CHARS])]


def signatures(text: str, *, limit: int = 20) -> list[str]:
    """Distinct signatures of a log's error lines, in order of first appearance."""
    seen: dict[str, None] = {}
    for line in error_lines(text):
        signature = normalise(line)
        if signature:
            seen.setdefault(signature, None)
        if len(seen) >= limit:
            break
    return list(seen)


def is_log(name: str, text: str) -> bool:
    """Artifacts that are logs (not CSV, JSON or command output tables), by content: a CSV has a header of
    plain column names and a second line with as many commas."""
    if text.lstrip()[:1] in "{[":
        return False
    lines = [line for line in text.strip().splitlines()[:2] if line.strip()]
    if len(lines) == 2 and lines[0].count(",") >= 1 and lines[0].count(",") == lines[1].count(","):
        return not all(_COLUMN.fullmatch(cell) for cell in lines[0].split(","))
    return True


_COLUMN = re.compile(r"\s*[\w.%()/-]+\s*")


def primary_signature(report: str, artifacts: dict[str, str]) -> str:
    """The first error signature of the logs (the report's when no log has one); ``"<no error line>"`` if none."""
    for name, text in artifacts.items():
        if is_log(name, text):
            found = signatures(text, limit=1)
            if found:
                return found[0]
    quoted = [line for line in report.splitlines() if _ERROR_MESSAGE.search(line)]
    found = signatures("\n".join(quoted), limit=1)
    return found[0] if found else "<no error line>"
