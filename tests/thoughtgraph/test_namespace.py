"""One import namespace: every layer installs under ``thoughtgraph`` and nothing claims a generic top-level
name (``agents``, ``evals`` ...) that other packages of this field install."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import thoughtgraph

pytestmark = pytest.mark.integration  # copies of the checkout imported in subprocesses

REPO = Path(__file__).resolve().parents[2]
LAYERS = ("backends", "prompts", "reasoning", "agents", "trainers", "evals")
BARE_IMPORT = re.compile(rf"^\s*(?:from|import) ({'|'.join(LAYERS)})\b", re.M)


def test_no_code_imports_a_layer_by_its_bare_name():
    offenders = []
    for path in REPO.rglob("*.py"):
        if {".venv", ".git", "mutants"} & set(path.parts):
            continue
        for match in BARE_IMPORT.finditer(path.read_text(encoding="utf-8")):
            offenders.append(f"{path.relative_to(REPO)}: {match.group(0).strip()}")
    assert offenders == []


def test_the_installed_distribution_claims_only_the_thoughtgraph_name():
    outside = subprocess.run([sys.executable, "-c", "import importlib.util as u; print([n for n in ('agents', "
                              "'evals', 'reasoning', 'backends', 'trainers', 'prompts') if u.find_spec(n)])"],
                             capture_output=True, text=True, cwd="/", check=True)  # fmt: skip
    assert outside.stdout.strip() == "[]"


def test_version_from_metadata_and_a_light_front_door():
    version = subprocess.run([sys.executable, "-c", "from importlib import metadata; print(metadata.version("
                              "'thoughtgraph'))"], capture_output=True, text=True, cwd="/", check=True)  # fmt: skip
    assert thoughtgraph.__version__ == version.stdout.strip() != "0+unknown"
    probe = ("import sys, thoughtgraph.backends; light = 'thoughtgraph.reasoning.api' not in sys.modules; "
             "from thoughtgraph import solve; print(light, solve.__module__)")  # fmt: skip
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd="/", check=True)
    assert shown.stdout.split() == ["True", "thoughtgraph.reasoning.api"]


ALLOWED = {
    "backends": set(),
    "prompts": {"backends"},
    "agents.runtime": {"backends", "prompts"},
    "agents.tools": set(),
    "reasoning": {"backends", "prompts", "agents.runtime"},
    "agents.diagnosis": {"backends", "prompts", "agents.runtime", "agents.tools", "reasoning"},
    "evals": {"backends", "prompts", "agents.runtime", "agents.tools", "agents.diagnosis", "reasoning"},
    "trainers": {"backends", "prompts", "agents.runtime", "reasoning", "evals"},
}
"""The layering contract: what each layer may import (besides itself and the light ``thoughtgraph`` root).
``thoughtgraph.cli`` and ``thoughtgraph.server`` sit on top and may import any layer."""


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "thoughtgraph" or len(parts) == 1:
        return None
    if parts[1] == "agents" and len(parts) > 2:
        return f"agents.{parts[2]}"
    return parts[1] if parts[1] in LAYERS else None


def test_no_layer_imports_a_layer_above_it():
    breaches = []
    for folder in LAYERS:
        for path in (REPO / folder).rglob("*.py"):
            module = "thoughtgraph." + ".".join(path.relative_to(REPO).with_suffix("").parts)
            own = _layer(module)
            for match in re.finditer(r"^\s*(?:from|import) (thoughtgraph(?:\.\w+)*)", path.read_text(), re.M):
                target = _layer(match.group(1))
                if match.group(1) in ("thoughtgraph",) or target in (None, own):
                    if target is None and match.group(1).split(".")[1:2] in (["cli"], ["server"]):
                        breaches.append(f"{module} imports {match.group(1)}")
                    continue
                if target not in ALLOWED[own]:
                    breaches.append(f"{module} imports {match.group(1)}")
    assert breaches == []


def test_a_copy_of_the_checkout_imports_its_own_layers(tmp_path):
    """What mutation testing relies on: run from a copy of the tree, ``thoughtgraph.<layer>`` is the copy's
    folder, not the installed one."""
    import shutil

    for name in (*LAYERS, "thoughtgraph"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    probe = "import thoughtgraph.reasoning.answers as a, thoughtgraph.backends as b; print(a.__file__, b.__file__)"
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert all(path.startswith(str(tmp_path)) for path in shown.stdout.split())
