"""The docs are run: every Python block of a page under docs/ runs, in order, in a fresh namespace (what a
reader who pastes them gets), and every relative link of a page names a file that exists."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from thoughtgraph.agents.diagnosis import checks
from thoughtgraph.agents.tools import registry
from thoughtgraph.backends import spec as backend_specs
from thoughtgraph.evals import datasets
from thoughtgraph.reasoning import methods

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\]\(([^)#:]+)(?:#[^)]*)?\)")
REGISTRIES = [
    (methods, "METHODS"), (datasets, "DATASETS"), (registry, "TOOLS"), (checks, "CHECKS"),
    (backend_specs, "FACTORIES"),
]  # fmt: skip


@pytest.fixture
def fresh_registries():
    """What a page registers is gone after it (each page starts from the built-ins)."""
    saved = [(module, name, dict(getattr(module, name))) for module, name in REGISTRIES]
    yield
    for module, name, contents in saved:
        live = getattr(module, name)
        live.clear()
        live.update(contents)


def test_there_are_pages_and_each_how_to_has_code():
    how_to = [page for page in PAGES if page.parent.name == "how-to"]
    assert len(how_to) >= 5
    assert all(BLOCK.search(page.read_text(encoding="utf-8")) for page in how_to)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(DOCS)))
def test_every_python_block_of_a_page_runs(page, fresh_registries):
    module = types.ModuleType(f"docs_{page.stem.replace('-', '_')}")
    sys.modules[module.__name__] = module  # a page's functions are importable by name, as a user's would be
    try:
        for number, block in enumerate(BLOCK.findall(page.read_text(encoding="utf-8")), start=1):
            code = compile(block, f"{page.relative_to(DOCS)} block {number}", "exec")
            exec(code, module.__dict__)
    finally:
        del sys.modules[module.__name__]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(DOCS)))
def test_every_relative_link_names_a_file_that_exists(page):
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        assert (page.parent / target).exists(), f"{page.relative_to(DOCS)} links to missing {target}"
