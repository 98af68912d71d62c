"""Files the framework writes and templates it renders: a link planted in a run folder does not make a run
write outside it; a prompt file cannot reach Python internals; a trainer config cannot set arbitrary
environment variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATA_DIR
from tests.security.serving import THOUGHTGRAPH
from thoughtgraph.evals.files import RunFolderError, open_log, write_file
from thoughtgraph.prompts import PromptError, load_prompt
from thoughtgraph.trainers.common import SetupError, check_config_env

pytestmark = pytest.mark.integration  # the CLI as a subprocess


def eval_run(out: Path, script: Path) -> subprocess.CompletedProcess:
    command = [THOUGHTGRAPH, "eval", "run", "--dataset", "gsm8k", "--limit", "2", "--backend", f"scripted:{script}",
               "--out", str(out), "--run-name", "r", "--data-dir", str(DATA_DIR), "--no-progress"]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("planted", ["results.json", "samples.jsonl", ".lock"])
def test_a_link_planted_in_a_run_folder_is_not_written_through(tmp_path, planted):
    script = tmp_path / "script.yaml"
    script.write_text('rules: []\ndefault: "The answer is 42."\n')
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    run_folder = tmp_path / "runs" / "r"
    run_folder.mkdir(parents=True)
    (run_folder / planted).symlink_to(victim)
    finished = eval_run(tmp_path / "runs", script)
    assert victim.read_text() == "precious\n"
    if planted == "results.json":  # a whole file is replaced: the link goes, the run succeeds
        assert finished.returncode == 0, finished.stderr
        assert not (run_folder / planted).is_symlink() and '"accuracy"' in (run_folder / planted).read_text()
    else:  # a log is read and appended to: refused by name
        assert finished.returncode == 2 and "symbolic link" in finished.stderr and planted in finished.stderr


def test_hard_links_and_linked_run_folders_are_refused(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    os.link(victim, tmp_path / "samples.jsonl")
    with pytest.raises(RunFolderError, match="2 hard links"), open_log(tmp_path / "samples.jsonl"):
        pass
    write_file(tmp_path / "samples.jsonl", "new\n")  # replacing the name leaves the other link alone
    assert victim.read_text() == "precious\n"
    script = tmp_path / "script.yaml"
    script.write_text('rules: []\ndefault: "The answer is 42."\n')
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "r").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    finished = eval_run(tmp_path / "runs", script)
    assert finished.returncode == 2 and "must be a real folder" in finished.stderr


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ question.__class__.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os.popen('touch CANARY').read() }}",
        "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    ],
)
def test_a_prompt_file_cannot_reach_python_internals(tmp_path, template):
    (tmp_path / "cot").mkdir()
    (tmp_path / "cot" / "solve.yaml").write_text(f'version: 1\nuser: "{template}"\n')
    prompt = load_prompt("cot/solve", folder=tmp_path)
    with pytest.raises(PromptError, match=r"may not|needs a value|not a valid template"):
        prompt.render(question="What is 6 times 7?")
    assert not (Path.cwd() / "CANARY").exists()
    assert load_prompt("cot/solve").render(question="6 times 7?")  # the shipped prompts render in the sandbox


def test_prompt_names_cannot_climb_out_of_their_folder(tmp_path):
    for name in ("../../etc/passwd", "/etc/passwd", "cot/../../x"):
        with pytest.raises(PromptError, match="relative name"):
            load_prompt(name, folder=tmp_path)


@pytest.mark.parametrize("key", ["LD_PRELOAD", "PATH", "PYTHONPATH", "OPENAI_API_KEY", "BASH_ENV"])
def test_a_trainer_config_may_set_only_documented_environment_variables(tmp_path, key):
    config = tmp_path / "config.yaml"
    config.write_text(f"model: x\nenv:\n  OMP_NUM_THREADS: 2\n  {key}: /tmp/evil\n")
    before = os.environ.get(key)
    with pytest.raises(SetupError, match=f"may not set '{key}'"):
        check_config_env(["--config", str(config)])
    assert os.environ.get(key) == before
    config.write_text("model: x\nenv:\n  OMP_NUM_THREADS: 2\n  TOKENIZERS_PARALLELISM: 'false'\n")
    check_config_env([f"--config={config}"])  # documented keys pass
    config.write_text(f"env:\n  {key}: /tmp/evil\n")
    command = [sys.executable, "-m", "thoughtgraph.trainers.sft", "--config", str(config)]
    train = subprocess.run(command, capture_output=True,
                           text=True, timeout=300, cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    assert train.returncode != 0 and f"may not set '{key}'" in train.stderr
