"""`python -m thoughtgraph.evals` on real GSM8K problems with the embedded model, including a killed run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration


def eval_command(data_dir, out, *extra):
    return [
        sys.executable, "-m", "thoughtgraph.evals", "run", "--dataset", "gsm8k", "--limit", "5",
        "--data-dir", str(data_dir),
        "--out", str(out), "--run-name", "real", "--option", "chain_tokens=96", "--no-progress", *extra,
    ]  # fmt: skip


def test_five_gsm8k_problems_write_results_and_samples(data_dir, tmp_path):
    done = subprocess.run(eval_command(data_dir, tmp_path), capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr
    assert "accuracy" in done.stdout and "over 5 problems" in done.stdout
    results = json.loads((tmp_path / "real" / "results.json").read_text())
    assert results["n_samples"] == 5
    assert sum(results["counts"].values()) == 5
    assert results["model"].startswith("llamacpp:SmolLM2")
    assert results["usage"]["total"]["calls"] >= 5 and results["usage"]["total"]["completion_tokens"] > 0
    assert results["prompt_versions"]["cot/solve"] == 1 and results["git_commit"]
    samples = [json.loads(line) for line in (tmp_path / "real" / "samples.jsonl").read_text().splitlines()]
    assert [s["id"] for s in sorted(samples, key=lambda s: s["id"])] == [f"gsm8k/test/{i}" for i in range(5)]
    assert all(s["status"] == "ok" and s["reasoning"] and s["usage"]["calls"] >= 1 for s in samples)


def test_killed_run_resumes_with_every_problem_exactly_once(data_dir, tmp_path):
    samples = tmp_path / "real" / "samples.jsonl"
    process = subprocess.Popen(
        eval_command(data_dir, tmp_path, "--concurrency", "1"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not samples.exists() or not samples.read_text().strip()):
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = len(samples.read_text().splitlines())
    assert 1 <= before < 5, "the kill should land mid-run"
    done = subprocess.run(eval_command(data_dir, tmp_path), capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr
    ids = [json.loads(line)["id"] for line in samples.read_text().splitlines()]
    assert sorted(ids) == [f"gsm8k/test/{i}" for i in range(5)]
    assert json.loads((tmp_path / "real" / "results.json").read_text())["n_samples"] == 5


def test_thoughtgraph_eval_reports_bad_input_clearly(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "thoughtgraph", "eval", "run", "--dataset", "mmlu", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "unknown dataset 'mmlu'" in done.stderr and "Traceback" not in done.stderr
