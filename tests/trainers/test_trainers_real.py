"""The trainers end to end on this CPU with the embedded model exported to an HF folder: GG calibration runs a
GRPO step from its tiny config (plain and under `accelerate launch`), writes its run folder, `--resume`
continues from the checkpoint, the adapter loads in the hf backend and `gg` runs with it; bad input fails
with a clear message before any model loads."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from thoughtgraph.trainers.common import SetupError, check_adapter_path, check_model

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "trainers" / "configs" / "gg_calibrate_tiny.yaml"


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("smollm2-hf")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "thoughtgraph"), "models", "export", "smollm2", str(folder)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    return folder


def train(args, data_dir, *, launcher=()):
    env = {**os.environ, "THOUGHTGRAPH_DATA": str(data_dir), "TOKENIZERS_PARALLELISM": "false"}
    command = (
        [*launcher, "-m", "thoughtgraph.trainers.gg_calibrate"]
        if launcher
        else [sys.executable, "-m", "thoughtgraph.trainers.gg_calibrate"]
    )
    return subprocess.run(
        [*command, "--config", str(TINY), *args], capture_output=True, text=True, timeout=900, env=env, cwd=REPO
    )


def test_gg_calibration_trains_resumes_and_its_adapter_runs_gg(exported, tmp_path, data_dir):
    run = tmp_path / "gg"
    first = train(["--model", str(exported), "--output_dir", str(run), "--max_steps", "1"], data_dir)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (run / "adapter_config.json").is_file() and (run / "adapter_model.safetensors").is_file()
    assert (run / "checkpoint-1").is_dir() and (run / "training.png").is_file()
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["num_generations"] == 2 and resolved["lora_r"] == 8 and resolved["max_steps"] == 1
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    logged = {k for row in metrics for k in row}
    assert any("gg_confidence_reward" in k for k in logged) and "loss" in logged
    # --resume continues from checkpoint-1 to step 2
    second = train(
        ["--model", str(exported), "--output_dir", str(run), "--max_steps", "2", "--resume", "true"], data_dir
    )
    assert second.returncode == 0, second.stderr[-3000:]
    state = json.loads((run / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 2 and 1 in steps
    # the adapter loads in the hf backend and GG runs with it
    from thoughtgraph.backends import create_backend
    from thoughtgraph.reasoning.api import solve

    backend = create_backend(f"hf:{exported}#adapter={run}")
    assert "adapter=" in backend.model_id
    solution = solve(
        "What is 2 + 3?", method="gg", backend=backend, paths=2, candidates=2, max_steps=2, step_tokens=24, max_calls=8
    )
    assert solution.method == "gg" and solution.usage["calls"] >= 1


def test_the_same_script_runs_under_accelerate_launch(exported, tmp_path, data_dir):
    launcher = [str(Path(sys.executable).parent / "accelerate"), "launch", "--num_processes", "1", "--cpu"]
    run = tmp_path / "accelerate"
    result = train(
        ["--model", str(exported), "--output_dir", str(run), "--max_steps", "1"], data_dir, launcher=launcher
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run / "adapter_model.safetensors").is_file()


def test_bad_input_fails_before_any_model_loads(tmp_path, data_dir, exported):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.read_text() + "learning_rat: 0.1\n")
    result = subprocess.run(
        [sys.executable, "-m", "thoughtgraph.trainers.gg_calibrate", "--config", str(bad)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode != 0 and "learning_rat" in result.stderr and "Unknown arguments" in result.stderr
    missing = train(
        ["--model", str(exported), "--data_dir", str(tmp_path / "nowhere"), "--output_dir", str(tmp_path / "r")],
        data_dir,
    )
    assert missing.returncode != 0 and "no gsm8k train file at" in missing.stderr
    resume = train(["--model", str(exported), "--output_dir", str(tmp_path / "fresh"), "--resume", "true"], data_dir)
    assert resume.returncode != 0 and "no checkpoint-* folder" in resume.stderr
    with pytest.raises(SetupError, match="is not a PEFT adapter"):
        check_adapter_path(str(exported))  # a model folder, not an adapter
    with pytest.raises(SetupError, match="export it first"):
        check_model("smollm2")
    from thoughtgraph.backends import BackendConfigError, create_backend

    with pytest.raises(BackendConfigError, match="not a PEFT adapter"):
        create_backend(f"hf:{exported}#adapter={exported}")
    with pytest.raises(BackendConfigError, match="hf:MODEL#adapter=PATH"):
        create_backend(f"hf:{exported}#lora={exported}")


def test_sft_distils_solved_traces_and_resumes(exported, tmp_path):
    runs = tmp_path / "evals" / "tr-gsm8k"
    runs.mkdir(parents=True)
    samples = [
        {"id": str(i), "question": f"What is {i} + {i}?", "status": "ok", "correct": True,
         "reasoning": f"{i} + {i} = {2 * i}.\nThe answer is {2 * i}."}
        for i in range(4)
    ]  # fmt: skip
    (runs / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    out = tmp_path / "sft"
    config = REPO / "trainers" / "configs" / "sft_tiny.yaml"
    common = [sys.executable, "-m", "thoughtgraph.trainers.sft", "--config", str(config), "--model", str(exported)]
    first = subprocess.run(
        [*common, "--from_runs", str(runs), "--output_dir", str(out), "--max_steps", "1"],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    assert "4 solved traces" in first.stdout and (out / "adapter_model.safetensors").is_file()
    second = subprocess.run(
        [*common, "--from_runs", str(runs), "--output_dir", str(out), "--max_steps", "2", "--resume", "true"],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]
    assert json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["global_step"] == 2


def test_rsim_trains_planner_then_reasoner_and_the_planner_adapter_plugs_in(exported, tmp_path, data_dir):
    out = tmp_path / "rsim"
    config = REPO / "trainers" / "configs" / "rsim_tiny.yaml"
    env = {**os.environ, "THOUGHTGRAPH_DATA": str(data_dir), "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "thoughtgraph.trainers.rsim", "--config", str(config), "--model", str(exported)]
    result = subprocess.run(
        [*command, "--output_dir", str(out)], capture_output=True, text=True, cwd=REPO, env=env, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    phases = json.loads((out / "phases.json").read_text())
    assert phases["adapters"] == {"planner": str(out / "phase-1-planner"), "reasoner": str(out / "phase-2-reasoner")}
    for phase in ("phase-1-planner", "phase-2-reasoner"):
        assert (out / phase / "adapter_model.safetensors").is_file()
        logged = {k for line in (out / phase / "metrics.jsonl").read_text().splitlines() for k in json.loads(line)}
        assert any("rsim_" in k and "reward" in k for k in logged)
    # a rerun finds both phases done and trains nothing
    again = subprocess.run(
        [*command, "--output_dir", str(out)], capture_output=True, text=True, cwd=REPO, env=env, timeout=600
    )
    assert again.returncode == 0 and "planner adapter:" in again.stdout
    assert not (out / "phase-2-reasoner" / "checkpoint-2").exists()
    # a phase killed before it saved its adapter continues from its checkpoint with --resume
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        (out / "phase-2-reasoner" / name).unlink()
    resumed = subprocess.run(
        [*command, "--output_dir", str(out), "--phase_steps", "2", "--resume", "true"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = json.loads((out / "phase-2-reasoner" / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and (out / "phase-2-reasoner" / "adapter_model.safetensors").is_file()
    # the trained planner plugs into another reasoner: the embedded model in llama.cpp
    from thoughtgraph.reasoning.api import solve

    solution = solve(
        "What is 2 + 3?", method="rsim", backend="llamacpp:smollm2",
        planner=f"hf:{exported}#adapter={out / 'phase-1-planner'}", max_steps=2, step_tokens=32,
    )  # fmt: skip
    assert solution.method == "rsim" and solution.reasoning.startswith("[")
    prompted = solve("What is 2 + 3?", method="rsim", backend="llamacpp:smollm2", max_steps=2, step_tokens=32)
    assert prompted.usage["calls"] >= 2 and prompted.reasoning.startswith("[")  # the planner, prompted, on llama.cpp
    with pytest.raises(SystemExit, match="schedule must list phases"):
        from thoughtgraph.trainers.rsim import main

        main(
            [
                "--config",
                str(config),
                "--model",
                str(exported),
                "--schedule",
                "critic",
                "--output_dir",
                str(tmp_path / "x"),
            ]
        )


def test_calibration_command_measures_ece_on_a_real_backend(tmp_path, data_dir):
    env = {**os.environ, "THOUGHTGRAPH_DATA": str(data_dir)}
    out = tmp_path / "cal"
    result = subprocess.run(
        [sys.executable, "-m", "thoughtgraph.trainers.calibration", "--backend", "llamacpp:smollm2",
         "--dataset", "gsm8k",
         "--limit", "3", "--max-tokens", "64", "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((out / "calibration.json").read_text())
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert summary["samples"] == len(samples) == 3 and 0.0 <= summary["ece"] <= 1.0
    assert all(0.0 < s["confidence"] <= 1.0 for s in samples)
    assert (out / "reliability.png").read_bytes()[:4] == b"\x89PNG"
