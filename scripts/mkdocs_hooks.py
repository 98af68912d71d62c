"""mkdocs hook: lay the ``thoughtgraph`` namespace out as one folder tree for the API reference.

The layers live in top-level folders that ``pyproject.toml`` maps into the namespace (``reasoning/`` is
``thoughtgraph.reasoning``), which static analysis cannot follow. Before the site is built, ``.api-src/thoughtgraph``
is made of links: the package's own files, and each mapped folder under its subpackage name.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TREE = REPO / ".api-src"


def on_startup(command: str, dirty: bool) -> None:
    """Before any plugin reads its configuration (mkdocstrings checks its ``paths`` then)."""
    mapping = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    shutil.rmtree(TREE, ignore_errors=True)
    package = TREE / "thoughtgraph"
    package.mkdir(parents=True)
    for entry in (REPO / mapping["thoughtgraph"]).iterdir():
        (package / entry.name).symlink_to(entry)
    for name, folder in mapping.items():
        if name.count(".") == 1:  # thoughtgraph.<layer>; deeper names live inside their layer's folder
            (package / name.split(".", 1)[1]).symlink_to(REPO / folder)
