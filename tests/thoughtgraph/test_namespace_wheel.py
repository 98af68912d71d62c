"""The built wheel installs beside the OpenAI Agents SDK: ``import agents`` is the SDK, and ``thoughtgraph
solve`` and ``thoughtgraph eval`` still work. A fresh venv gets the wheel and ``openai-agents`` (from PyPI);
the project's own dependencies are reached through a path file, so nothing heavy is installed twice."""

from __future__ import annotations

import json
import site
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_and_the_openai_agents_sdk_share_one_environment(tmp_path, data_dir):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(REPO),
                    "-w", str(wheels)], check=True, capture_output=True, timeout=600)  # fmt: skip
    wheel = next(wheels.glob("thoughtgraph-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    packages = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                              capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    # the project's dependencies, after the venv's own packages (.pth files there are not run: no editable finder)
    (Path(packages) / "zz_project_dependencies.pth").write_text(site.getsitepackages()[0] + "\n")
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert install.returncode == 0, install.stderr[-2000:]
    sdk = subprocess.run([str(python), "-m", "pip", "install", "-q", "openai-agents"], capture_output=True, text=True,
                         timeout=900)  # fmt: skip
    assert sdk.returncode == 0, sdk.stderr[-2000:]
    probe = ("import agents, thoughtgraph, thoughtgraph.agents; print(hasattr(agents, 'Runner'), agents.__file__, "
             "thoughtgraph.agents.__file__, thoughtgraph.__file__)")  # fmt: skip
    shown = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, cwd=tmp_path, check=True)
    is_sdk, sdk_file, ours, root = shown.stdout.split()
    assert is_sdk == "True" and "site-packages/agents" in sdk_file
    assert ours.startswith(packages) and root.startswith(packages)  # the wheel, not the checkout
    script = tmp_path / "script.yaml"
    script.write_text('rules: []\ndefault: "2 and 3 make 5. The answer is 5."\n')
    thoughtgraph = venv / "bin" / "thoughtgraph"
    solved = subprocess.run([str(thoughtgraph), "solve", "What is 2+3?", "--backend", f"scripted:{script}", "--json"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)  # fmt: skip
    assert solved.returncode == 0, solved.stderr[-2000:]
    assert json.loads(solved.stdout)["answer"] == "5"
    evaluated = subprocess.run([str(thoughtgraph), "eval", "run", "--dataset", "gsm8k", "--limit", "2", "--backend",
                                f"scripted:{script}", "--data-dir", str(data_dir), "--out", str(tmp_path / "runs"),
                                "--no-progress"],
                               capture_output=True, text=True, cwd=tmp_path, timeout=600)  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "over 2 problems" in evaluated.stdout
