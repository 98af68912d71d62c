"""The docs are run, as a reader who copies them would: every Python block of the README and of a page under
docs/ runs, in order, in a fresh namespace; every shell block runs in bash; both from a folder laid out like a
checkout (the repository's files, an empty ``runs/``). A block that cannot run here (a server that runs until
stopped, a multi-GPU node) carries ``<!-- not run: why -->`` on the line above it. Every relative link names a
file that exists, and ``mkdocs build --strict`` builds the site without a warning (links between pages, API
references from the docstrings)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from tests.conftest import DATA_DIR
from thoughtgraph.agents.diagnosis import checks
from thoughtgraph.agents.tools import registry
from thoughtgraph.backends import spec as backend_specs
from thoughtgraph.evals import datasets
from thoughtgraph.reasoning import methods

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]
BLOCK = re.compile(r"^(?:<!-- not run: (?P<why>[^\n]*?) -->\n)?```(?P<language>\w*)\n(?P<code>.*?)^```", re.M | re.S)
LINK = re.compile(r"\]\(([^)#:]+)(?:#[^)]*)?\)")
REGISTRIES = [
    (methods, "METHODS"), (datasets, "DATASETS"), (registry, "TOOLS"), (checks, "CHECKS"),
    (backend_specs, "FACTORIES"),
]  # fmt: skip
BIN = Path(sys.executable).parent


def name(page: Path) -> str:
    return str(page.relative_to(REPO))


def blocks(page: Path, language: str) -> list[str]:
    """The page's blocks in ``language`` that are meant to run."""
    found = [match for match in BLOCK.finditer(page.read_text(encoding="utf-8")) if match["language"] == language]
    return [match["code"] for match in found if match["why"] is None]


def page_param(page: Path, language: str) -> pytest.ParameterSet:
    """How-to pages run on test doubles (unit tests); the other pages use the embedded model and the CLI."""
    fast = page.parent.name == "how-to"
    return pytest.param(page, id=name(page), marks=() if fast else (pytest.mark.integration,))


@pytest.fixture
def fresh_registries():
    """What a page registers is gone after it (each page starts from the built-ins)."""
    saved = [(module, name, dict(getattr(module, name))) for module, name in REGISTRIES]
    yield
    for module, name, contents in saved:
        live = getattr(module, name)
        live.clear()
        live.update(contents)


@pytest.fixture
def checkout(tmp_path, monkeypatch) -> Path:
    """A folder laid out like a checkout: the repository's top-level entries linked in, no ``runs/`` yet."""
    for entry in REPO.iterdir():
        if entry.name not in {"runs", ".git", ".venv", "site"}:
            (tmp_path / entry.name).symlink_to(entry)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("THOUGHTGRAPH_DATA", str(DATA_DIR))
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
    return tmp_path


def test_there_are_pages_each_how_to_has_code_and_each_skip_says_why():
    how_to = [page for page in PAGES if page.parent.name == "how-to"]
    assert len(how_to) >= 5 and all(blocks(page, "python") for page in how_to)
    for page in PAGES:
        for match in BLOCK.finditer(page.read_text(encoding="utf-8")):
            assert match["why"] is None or len(match["why"]) > 20, f"{name(page)}: say why a block is not run"
            assert match["language"], f"{name(page)}: a block without a language (use text for output)"


@pytest.mark.parametrize("page", [page_param(page, "python") for page in PAGES if blocks(page, "python")])
def test_every_python_block_of_a_page_runs(page, fresh_registries, checkout):
    module = types.ModuleType(f"docs_{page.stem.replace('-', '_')}")
    sys.modules[module.__name__] = module  # a page's functions are importable by name, as a user's would be
    try:
        for number, block in enumerate(blocks(page, "python"), start=1):
            exec(compile(block, f"{name(page)} python block {number}", "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]


@pytest.mark.integration
@pytest.mark.timeout(1800)  # the trainers page exports the model and trains for a step or two
@pytest.mark.parametrize("page", [pytest.param(page, id=name(page)) for page in PAGES if blocks(page, "bash")])
def test_every_shell_block_of_a_page_runs(page, checkout):
    for number, block in enumerate(blocks(page, "bash"), start=1):
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], capture_output=True, text=True, timeout=1500)
        assert done.returncode == 0, (
            f"{name(page)} bash block {number}:\n{block}\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
        )


@pytest.mark.parametrize("page", [pytest.param(page, id=name(page)) for page in PAGES])
def test_every_relative_link_names_a_file_that_exists(page):
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        assert (page.parent / target).exists(), f"{name(page)} links to missing {target}"


@pytest.mark.integration
def test_the_site_builds_strictly(tmp_path):
    built = subprocess.run(
        [str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-4000:]
    reference = (tmp_path / "site" / "reference" / "index.html").read_text(encoding="utf-8")
    assert "MethodSpec" in reference and "register_dataset" in reference  # the API reference was generated
