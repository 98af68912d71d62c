"""Lay the sources out as the installed package for mutmut (``make mutation`` runs it).

The layers live in top-level folders (``reasoning/``) but import as ``thoughtgraph.reasoning`` (the
``package-dir`` mapping). mutmut names each mutant by its file's path, so mutating ``reasoning/bot.py`` gives
``reasoning.bot.*`` keys while the tests call ``thoughtgraph.reasoning.bot``: no test would ever reach a mutant.
This script copies the tree into ``.mutation/`` with the installed layout (``thoughtgraph/reasoning/bot.py``),
the tests beside it, and a ``pyproject.toml`` whose ``[tool.mutmut]`` paths follow that layout. Run mutmut
from inside ``.mutation/``; its ``mutants/`` folder comes first on ``sys.path``, ahead of the editable install.

Usage: ``python scripts/mutation_tree.py [DEST]`` (default ``.mutation``).
"""

from __future__ import annotations

import re
import shutil
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


def package_layout(pyproject: dict) -> dict[str, str]:
    """``{"thoughtgraph.reasoning": "reasoning", ...}`` from setuptools' package-dir table."""
    return pyproject["tool"]["setuptools"]["package-dir"]


def installed_path(source: str, layout: dict[str, str]) -> str:
    """Map a repository path (``reasoning/bot.py``) to its installed path (``thoughtgraph/reasoning/bot.py``)."""
    best = max(
        (folder for folder in layout.values() if source.startswith(folder.rstrip("/") + "/")), key=len, default=None
    )
    if best is None:
        raise ValueError(f"{source!r} is in no folder of [tool.setuptools.package-dir]")
    package = next(name for name, folder in layout.items() if folder == best)
    return package.replace(".", "/") + source[len(best) :]


def mutmut_section(config: dict, layout: dict[str, str]) -> str:
    """The ``[tool.mutmut]`` table rewritten for the installed layout, as TOML text."""

    def relocate(paths: list[str]) -> list[str]:
        return [installed_path(path, layout) if not path.startswith(("tests", "pyproject")) else path for path in paths]

    lines = ["[tool.mutmut]"]
    lines.append(f"source_paths = {relocate(config['source_paths'])!r}")
    lines.append(f"do_not_mutate = {relocate(config.get('do_not_mutate', []))!r}")
    lines.append("also_copy = ['thoughtgraph/', 'tests/', 'pyproject.toml']")
    lines.append(f"pytest_add_cli_args_test_selection = {config['pytest_add_cli_args_test_selection']!r}")
    return "\n".join(lines).replace("'", '"') + "\n"


def build(dest: Path) -> None:
    text = (REPO / "pyproject.toml").read_text()
    pyproject = tomllib.loads(text)
    layout = package_layout(pyproject)
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for package, folder in sorted(layout.items()):
        target = dest / package.replace(".", "/")
        shutil.copytree(REPO / folder, target, ignore=IGNORED, dirs_exist_ok=True)
    shutil.copytree(REPO / "tests", dest / "tests", ignore=IGNORED)
    without_mutmut = re.sub(r"(?ms)^\[tool\.mutmut\].*?(?=^\[|\Z)", "", text)
    (dest / "pyproject.toml").write_text(without_mutmut + "\n" + mutmut_section(pyproject["tool"]["mutmut"], layout))


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / ".mutation")
