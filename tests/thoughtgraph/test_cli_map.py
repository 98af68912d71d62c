"""The one ``thoughtgraph`` command reaches the trainers too (``thoughtgraph train NAME``, each trainer's own
parser behind it), and every command reports a user's mistake the same way: one red line, exit status 2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.security.serving import THOUGHTGRAPH

pytestmark = pytest.mark.integration


def thoughtgraph(*arguments: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([THOUGHTGRAPH, *arguments], capture_output=True, text=True, timeout=timeout)


def test_train_lists_the_trainers_and_hands_their_options_to_the_trainer():
    listed = thoughtgraph("train", "--help")
    assert listed.returncode == 0
    assert all(name in listed.stdout for name in ("gg-calibrate", "rsim", "sft", "calibration"))
    usage = thoughtgraph("train", "sft", "--help")
    assert usage.returncode == 0 and "usage: thoughtgraph train sft" in usage.stdout and "--from_runs" in usage.stdout


def test_train_refuses_an_abbreviated_option_and_a_bad_config(tmp_path):
    tiny = Path(__file__).resolve().parents[2] / "trainers" / "configs" / "gg_calibrate_tiny.yaml"
    abbreviated = thoughtgraph("train", "gg-calibrate", "--config", str(tiny), "--model", str(tmp_path),
                               "--max_step", "2")  # fmt: skip
    assert abbreviated.returncode != 0 and "max_step" in abbreviated.stderr  # not silently taken as --max_steps
    config = tmp_path / "evil.yaml"
    config.write_text("env:\n  LD_PRELOAD: /tmp/evil.so\n")
    refused = thoughtgraph("train", "rsim", "--config", str(config))
    assert refused.returncode != 0 and "may not set 'LD_PRELOAD'" in refused.stderr


@pytest.mark.parametrize(
    "arguments,message",
    [
        (["solve", "1+1?", "--backend", "nope:thing"], "unknown backend 'nope'"),
        (["solve", "1+1?", "--method", "nope", "--backend", "scripted:/no/such.yaml"], "nope"),
        (["models", "export", "/no/such.gguf", "out"], "no/such.gguf"),
        (["diagnose", "mine", "/no/such.jsonl", "--out", "kb"], "no/such.jsonl"),
        (["serve", "--backend", "llamacpp:smollm2#slots=0"], "slots takes 1 to 64"),
    ],
)
def test_a_users_mistake_is_one_red_line_and_exit_status_2(arguments, message):
    failed = thoughtgraph(*arguments)
    assert failed.returncode == 2, failed.stderr[-1000:]
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last and "Traceback" not in failed.stderr
