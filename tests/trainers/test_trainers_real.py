"""The trainers end to end on this CPU with the embedded model exported to an HF folder: GG calibration runs
GRPO steps from its tiny config (plain and with 2 processes under `accelerate launch`), writes its run folder,
resumes after being killed, its adapter changes the policy's logprobs, loads in the hf backend and `gg` runs with
it; SFT and rSIM train and resume; bad input fails with a clear message before any model loads."""

import json
import os
import signal
import subprocess
import sys
import time
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


def logprob_shift(model, adapter):
    """The largest change the adapter makes to the model's next-token logprobs over fixed prompts."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    base = AutoModelForCausalLM.from_pretrained(model)
    prompts = ["What is 7 + 5? Think step by step.", "Tom has 3 bags with 4 coins in each bag. How many coins?"]
    inputs = [tokenizer(p, return_tensors="pt")["input_ids"] for p in prompts]
    with torch.no_grad():
        before = [torch.log_softmax(base(input_ids=i).logits, -1) for i in inputs]
        tuned = PeftModel.from_pretrained(base, str(adapter))
        after = [torch.log_softmax(tuned(input_ids=i).logits, -1) for i in inputs]
    return max((a - b).abs().max().item() for a, b in zip(after, before, strict=True))


def test_gg_calibration_trains_resumes_after_a_kill_and_its_adapter_runs_gg(exported, tmp_path, data_dir):
    run = tmp_path / "gg"
    args = ["--model", str(exported), "--output_dir", str(run), "--max_steps", "3", "--learning_rate", "1e-4",
            "--correctness_reward_weight", "0.5"]  # fmt: skip
    env = {**os.environ, "THOUGHTGRAPH_DATA": str(data_dir), "TOKENIZERS_PARALLELISM": "false"}
    first = subprocess.Popen(
        [sys.executable, "-m", "thoughtgraph.trainers.gg_calibrate", "--config", str(TINY), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    while not (run / "checkpoint-1" / "trainer_state.json").is_file() and first.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint-1 within 10 minutes"
        time.sleep(0.1)
    first.kill()  # killed after its first checkpoint, before the run ends
    assert first.wait() == -signal.SIGKILL, first.stderr.read()[-3000:]
    assert not (run / "adapter_model.safetensors").exists()
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["num_generations"] == 2 and resolved["lora_r"] == 8 and resolved["max_steps"] == 3
    assert resolved["correctness_reward_weight"] == 0.5 and resolved["reward_weights"] == [1.0, 0.5]
    second = train([*args, "--resume", "true"], data_dir)
    assert second.returncode == 0, second.stderr[-3000:]
    state = json.loads((run / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert sorted({row["step"] for row in metrics}) == [1, 2, 3]  # no step lost across the kill
    logged = {k for row in metrics for k in row}
    assert any("gg_confidence_reward" in k for k in logged) and "loss" in logged
    assert any("correctness_reward" in k for k in logged)  # the second reward ran beside GG's
    assert (run / "adapter_model.safetensors").is_file() and (run / "training.png").is_file()
    assert logprob_shift(exported, run) > 1e-4  # the adapter changed the policy, not only wrote files
    # the adapter loads in the hf backend and GG runs with it
    from thoughtgraph.backends import create_backend
    from thoughtgraph.reasoning.api import solve

    backend = create_backend(f"hf:{exported}#adapter={run}")
    assert "adapter=" in backend.model_id
    solution = solve(
        "What is 2 + 3?", method="gg", backend=backend, paths=2, candidates=2, max_steps=2, step_tokens=24, max_calls=8
    )
    assert solution.method == "gg" and solution.usage["calls"] >= 1


def test_two_cpu_processes_under_accelerate_launch_take_the_same_steps(exported, tmp_path, data_dir):
    """Scale-out: the same command with 2 CPU processes (gloo) trains the planned optimizer steps and saves one
    adapter; a multi-GPU run is this command with `--config_file trainers/configs/accelerate_zero2.yaml`.
    accelerate's `--cpu` runs several processes only under MPI; its multi-process launcher (torchrun) on a
    machine without CUDA starts CPU processes that join over gloo."""
    launcher = [str(Path(sys.executable).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]  # fmt: skip
    run = tmp_path / "accelerate"
    result = train(
        ["--model", str(exported), "--output_dir", str(run), "--max_steps", "2"], data_dir, launcher=launcher
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training on 2 process(es) (gloo)" in result.stdout
    assert json.loads((run / "checkpoint-2" / "trainer_state.json").read_text())["global_step"] == 2
    assert (run / "adapter_model.safetensors").is_file() and not (run / "checkpoint-3").exists()


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
    # a gold answer that cannot be parsed: the file and line, before training
    (tmp_path / "bad-data" / "gsm8k").mkdir(parents=True)
    rows = [{"question": "What is 1 + 1?", "answer": "1 + 1 = 2\n#### 2"}, {"question": "Q?", "answer": "#### two"}]
    (tmp_path / "bad-data" / "gsm8k" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    gold = train(
        ["--model", str(exported), "--data_dir", str(tmp_path / "bad-data"), "--output_dir", str(tmp_path / "g")],
        data_dir,
    )
    assert gold.returncode != 0 and "train.jsonl:2" in gold.stderr and "not a number: 'two'" in gold.stderr
    # a model folder without weights
    empty = tmp_path / "no-weights"
    empty.mkdir()
    (empty / "config.json").write_text((exported / "config.json").read_text())
    weightless = train(["--model", str(empty), "--output_dir", str(tmp_path / "w")], data_dir)
    assert weightless.returncode != 0 and "no weights" in weightless.stderr
    assert not (tmp_path / "g").exists() and not (tmp_path / "w").exists()  # nothing started
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
    assert logprob_shift(exported, out) > 1e-4


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
    planner_logs = [json.loads(line) for line in (out / "phase-1-planner" / "metrics.jsonl").read_text().splitlines()]
    spread = max(row.get("reward_std", 0.0) for row in planner_logs)
    if spread > 0:  # GRPO learns from reward differences within a group: then the planner must have changed
        assert logprob_shift(exported, out / "phase-1-planner") > 0
    else:  # equal rewards give zero advantages: LoRA's zero-initialised B stays zero and nothing changes
        assert logprob_shift(exported, out / "phase-1-planner") == 0
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


TINY_RECIPE_SETTINGS = {
    "sft": {"per_device_train_batch_size": 2, "max_length": 128, "learning_rate": 1e-4},
    "gg_calibrate": {"num_generations": 2, "per_device_train_batch_size": 2, "max_completion_length": 16},
    "rsim": {"num_generations": 2, "per_device_train_batch_size": 2, "max_completion_length": 8,
             "schedule": ["planner"], "phase_steps": 2, "rollout_steps": 1, "step_tokens": 16},
}  # fmt: skip
METRICS_BY_TRAINER = {"sft": "accuracy", "gg_calibrate": "ece", "rsim": "rollout_reward"}


@pytest.mark.parametrize("trainer", ["sft", "gg_calibrate", "rsim"])
def test_a_tiny_recipe_measures_trains_measures_and_resumes(exported, tmp_path, trainer):
    """The recipe's stages wired end to end at toy size (the real recipes take about 30 minutes): data, before,
    (traces), train, after, then recipe.json and training.png; a second run redoes nothing."""
    settings = TINY_RECIPE_SETTINGS[trainer]
    steps = 1 if trainer == "gg_calibrate" else 2  # sft, rsim: the target is also measured at step 1's checkpoint
    recipe = {
        "trainer": trainer, "model": str(exported), "train_problems": 16, "test_problems": 4, "measure_tokens": 48,
        "measure_concurrency": 4, "measure_checkpoints": trainer != "gg_calibrate",
        "trainer_config": {**settings, "lora_r": 4, "lora_alpha": 8, "max_steps": steps, "save_steps": 1,
                           "logging_steps": 1, "report_to": "none", "bf16": False, "use_cpu": True},
    }  # fmt: skip
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "thoughtgraph.trainers.recipe", str(path), "--out", str(out)]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    first = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads((out / "recipe.json").read_text())
    assert report["optimizer_steps"] == steps and report["before"]["n"] == report["after"]["n"] == 4
    assert report["metric"] == METRICS_BY_TRAINER[trainer]
    extra = {"sft": {"traces", "at-step-1"}, "rsim": {"at-step-1"}}.get(trainer, set())
    assert set(report["seconds"]) == {"data", "before", "train", "after"} | extra
    assert (out / "training.png").read_bytes()[:4] == b"\x89PNG"
    trained = out / "train" / ("phase-1-planner" if trainer == "rsim" else "")
    assert (trained / "adapter_model.safetensors").is_file() and (out / "after" / "samples.jsonl").is_file()
    targets = [json.loads(line) for line in (trained / "target_metric.jsonl").read_text().splitlines()]
    assert [t["step"] for t in targets] == list(range(steps + 1))
    again = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert again.returncode == 0 and again.stderr.count("already done") == len(report["seconds"])
    assert json.loads((out / "recipe.json").read_text())["seconds"] == report["seconds"]
