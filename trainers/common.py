"""What every trainer shares: argument parsing (TRL's ``TrlParser``: a YAML config plus command-line overrides,
unknown keys refused), checks that fail before any model loads, training data from ``evals``' datasets, LoRA,
and the run folder (resolved config, metrics JSONL, a loss/reward plot, checkpoints that ``--resume`` continues).
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from thoughtgraph.backends.errors import BackendConfigError
from thoughtgraph.backends.hf import check_adapter, locate_hf_model

CONFIGS = Path(__file__).parent / "configs"
METRICS = "metrics.jsonl"
PLOT = "training.png"
RESOLVED = "config.yaml"
WEIGHTS = ("*.safetensors", "pytorch_model*.bin")
"""What a model folder must hold besides config.json (sharded files included)."""


class SetupError(ValueError):
    """A trainer's configuration, data or model cannot be used; the message says which and why."""


@dataclass
class ModelArguments:
    model: str = field(default="", metadata={"help": "An HF model folder (see `thoughtgraph models export`)."})
    lora_r: int = field(default=128, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=128, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: str = field(default="all-linear", metadata={"help": "Modules LoRA adapts."})
    resume: bool = field(default=False, metadata={"help": "Continue from the last checkpoint in output_dir."})


@dataclass
class DataArguments:
    dataset: str = field(default="gsm8k", metadata={"help": "gsm8k, math or math500 (evals datasets)."})
    split: str = field(default="train", metadata={"help": "Dataset split."})
    limit: int | None = field(default=None, metadata={"help": "Use the first N problems."})
    data_dir: str | None = field(default=None, metadata={"help": "Data folder (default: $THOUGHTGRAPH_DATA)."})


CONFIG_ENV = frozenset({
    "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "TOKENIZERS_PARALLELISM", "PYTORCH_CUDA_ALLOC_CONF",
    "HF_HOME", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "THOUGHTGRAPH_DATA",
    "WANDB_MODE", "WANDB_PROJECT", "NCCL_DEBUG", "ACCELERATE_LOG_LEVEL",
})  # fmt: skip
"""What a trainer config's ``env:`` section may set (TRL sets every key it lists). Anything else (``PATH``,
``LD_PRELOAD``, ``PYTHONPATH``, a credential) would let a config file change what the process runs or sends:
refused by name before TRL sees the file."""


def _config_path(argv: list[str]) -> str | None:
    for index, item in enumerate(argv):
        if item == "--config" and index + 1 < len(argv):
            return argv[index + 1]
        if item.startswith("--config="):
            return item.partition("=")[2]
    return None


def check_config_env(argv: list[str]) -> None:
    """Refuse a config whose ``env:`` sets a variable outside ``CONFIG_ENV`` or a value that is not a scalar."""
    path = _config_path(argv)
    if path is None:
        return
    try:
        config = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise SetupError(f"cannot read the config {path}: {error}") from None
    environment = config.get("env") if isinstance(config, dict) else None
    if environment is None:
        return
    if not isinstance(environment, dict):
        raise SetupError(f"{path}: `env` must be a mapping of variable names to values")
    for key, value in environment.items():
        if key not in CONFIG_ENV:
            raise SetupError(f"{path}: `env` may not set {str(key)[:80]!r}; a config may set only "
                             f"{', '.join(sorted(CONFIG_ENV))}")  # fmt: skip
        if not isinstance(value, str | int | float | bool):
            raise SetupError(f"{path}: `env` value of {key} must be a string or a number")


def parse(*argument_types: type, argv: list[str] | None = None) -> tuple[Any, ...]:
    """(our dataclasses..., TRL config) from ``--config FILE.yaml`` and overrides; unknown keys are an error, and
    so is an ``env:`` entry outside ``CONFIG_ENV``. Abbreviations are off: ``--max_step`` is not ``--max_steps``."""
    import sys

    from trl import TrlParser

    check_config_env(list(argv) if argv is not None else sys.argv[1:])
    try:
        return tuple(TrlParser(argument_types, allow_abbrev=False).parse_args_and_config(args=argv))
    except ValueError as error:
        raise SetupError(str(error)) from None


def check_model(model: str) -> Path:
    """The model folder, checked before anything loads."""
    if not model:
        raise SetupError("no model: set `model:` in the config or pass --model DIR (see `thoughtgraph models export`)")
    try:
        folder, gguf = locate_hf_model(model)
    except BackendConfigError as error:
        raise SetupError(str(error)) from None
    if gguf is not None:
        raise SetupError(f"{model!r} is a GGUF; export it first: thoughtgraph models export {model} DIR")
    if not any(next(folder.glob(pattern), None) for pattern in WEIGHTS):
        raise SetupError(
            f"{model!r} has a config.json but no weights ({', '.join(WEIGHTS)}); an interrupted export? "
            "export it again: thoughtgraph models export smollm2 DIR"
        )
    return folder


def check_adapter_path(path: str) -> Path:
    try:
        return check_adapter(path)
    except BackendConfigError as error:
        raise SetupError(str(error)) from None


def training_problems(data: DataArguments) -> Any:
    """An HF ``Dataset`` of conversational prompts (the CoT prompt) with ``answer`` and ``dataset`` columns."""
    from datasets import Dataset

    from thoughtgraph.evals.datasets import DATA_ENV, DataError, load_dataset
    from thoughtgraph.prompts import load_prompt

    folder = data.data_dir or os.environ.get(DATA_ENV)
    try:
        problems = load_dataset(data.dataset, data.split, data_dir=folder).problems
    except DataError as error:
        raise SetupError(str(error)) from None
    problems = problems[: data.limit] if data.limit else problems
    if not problems:
        raise SetupError(f"no {data.dataset} {data.split} problems to train on")
    prompt = load_prompt("cot/solve")
    rows = [
        {
            "prompt": [{"role": role, "content": text} for role, text in prompt.render(question=p.prompt)],
            "answer": p.gold,
            "dataset": data.dataset,
        }
        for p in problems
    ]
    return Dataset.from_list(rows)


def lora(model: ModelArguments) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=model.lora_r, lora_alpha=model.lora_alpha, lora_dropout=model.lora_dropout,
        target_modules=model.lora_target_modules, task_type="CAUSAL_LM",
    )  # fmt: skip


CHECKPOINT = re.compile(r"checkpoint-(\d+)")
"""A checkpoint folder as transformers' Trainer names it."""


def saved_checkpoints(train: Path) -> list[tuple[int, Path]]:
    """(step, folder) of each ``checkpoint-N`` folder the trainer saved, in step order (other names ignored)."""
    found = [(CHECKPOINT.fullmatch(folder.name), folder) for folder in train.glob("checkpoint-*") if folder.is_dir()]
    return sorted((int(match[1]), folder) for match, folder in found if match)


def resume_point(output_dir: str, resume: bool) -> bool:
    if not resume:
        return False
    checkpoints = sorted(Path(output_dir).glob("checkpoint-*"))
    if not checkpoints:
        raise SetupError(f"--resume: no checkpoint-* folder in {output_dir} to continue from")
    return True


def write_resolved_config(output_dir: str, *configs: Any) -> Path:
    merged: dict[str, Any] = {}
    for config in configs:
        values = config.to_dict() if hasattr(config, "to_dict") else asdict(config)
        merged.update({k: v for k, v in values.items() if isinstance(v, str | int | float | bool | list | type(None))})
    path = Path(output_dir) / RESOLVED
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(merged, sort_keys=True))
    return path


FLAT_REWARD_STEPS = 3
"""Logged GRPO steps in a row in which every group's completions got one reward, before the run warns."""


class FlatRewardWatch:
    """Warns once when GRPO has nothing to learn from: ``frac_reward_zero_std`` is 1.0 (every group of
    completions got the same reward, so every advantage is zero and the policy does not move) for
    ``FLAT_REWARD_STEPS`` logged steps in a row."""

    def __init__(self, steps: int = FLAT_REWARD_STEPS) -> None:
        self.steps, self.run, self.warned = steps, 0, False

    def see(self, logs: dict) -> str | None:
        """The warning, the first time the run of flat steps reaches ``steps``; else None."""
        if "frac_reward_zero_std" not in logs:
            return None
        self.run = self.run + 1 if logs["frac_reward_zero_std"] >= 1.0 else 0
        if self.run < self.steps or self.warned:
            return None
        self.warned = True
        return (
            f"warning: in each of the last {self.run} steps every group's completions got the same reward "
            "(frac_reward_zero_std = 1.0): the advantages are zero and the policy does not change. The samples "
            "never differ in reward: more generations per prompt, a higher temperature, or a task the model "
            "sometimes gets right and sometimes not"
        )


def metrics_callback(output_dir: str) -> Any:
    """A TrainerCallback appending every log (loss, rewards, ...) with its step to ``metrics.jsonl``, and
    warning when GRPO's rewards give it nothing to learn from (:class:`FlatRewardWatch`)."""
    from transformers import TrainerCallback

    class MetricsToJsonl(TrainerCallback):
        def __init__(self) -> None:
            self.watch = FlatRewardWatch()

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **_: Any) -> None:
            if logs and state.is_world_process_zero:
                with (Path(output_dir) / METRICS).open("a") as out:
                    out.write(json.dumps({"step": state.global_step, **logs}) + "\n")
                warning = self.watch.see(logs)
                if warning:
                    print(warning, file=sys.stderr)

    return MetricsToJsonl()


PROGRESS_KEYS = ("reward", "loss")
"""Logged values shown beside the progress bar: every key containing one of these (GRPO's ``reward`` and per
reward function ``rewards/NAME/mean``, SFT's ``loss``)."""


def progress_callback() -> Any:
    """transformers' progress bar (step, elapsed, time left) with the latest reward and loss beside it instead of a
    printed dict per log (every log is in ``metrics.jsonl``)."""
    from transformers.trainer_callback import ProgressCallback

    class RewardProgress(ProgressCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **_: Any) -> None:
            if not (state.is_world_process_zero and self.training_bar is not None and logs):
                return
            shown = {
                name.removeprefix("rewards/").removesuffix("/mean"): f"{value:.3g}"
                for name, value in logs.items()
                if isinstance(value, int | float) and _plotted(name, PROGRESS_KEYS)
            }
            if shown:  # the end-of-run log holds only averages: the last step's values stay on the bar
                self.training_bar.set_postfix(shown, refresh=True)

    return RewardProgress()


def train_and_save(trainer: Any, output_dir: str, resume: bool) -> Path:
    """Train (from the last checkpoint when ``resume``), save the LoRA adapter into ``output_dir`` (what
    ``hf:MODEL#adapter=OUTPUT_DIR`` loads) and plot the logged metrics. The progress bar shows the step, the
    reward and loss, and the time left."""
    from transformers.trainer_callback import ProgressCallback

    if trainer.pop_callback(ProgressCallback) is not None:  # absent when the bar is disabled (disable_tqdm)
        trainer.add_callback(progress_callback())
    if trainer.accelerator.is_main_process:
        backend = getattr(trainer.accelerator.state, "backend", None) or "one process"
        print(f"training on {trainer.accelerator.num_processes} process(es) ({backend})", flush=True)
    trainer.train(resume_from_checkpoint=resume or None)
    trainer.save_model(output_dir)
    plot_metrics(output_dir)
    return Path(output_dir)


def _plotted(name: str, keys: tuple[str, ...]) -> bool:
    """A curve worth drawing: a key of ``keys``, not a spread (``*_std``, ``frac_*``) and not the run's end-of-run
    averages (``train_*``)."""
    if name == "step" or name.startswith(("train_", "frac_")) or "std" in name:
        return False
    return any(k in name for k in keys)


def training_curves(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, list[tuple[int, float]]]:
    """name -> (step, value) of every logged metric worth drawing; a curve equal to another is drawn once."""
    series: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        for name, value in row.items():
            if _plotted(name, keys) and isinstance(value, int | float):
                series.setdefault(name, []).append((row["step"], float(value)))
    for name in sorted(series, key=len, reverse=True):  # one reward function: its mean repeats `reward`
        if any(other != name and series[other] == series[name] for other in series):
            del series[name]
    return series


TARGET = "target_metric.jsonl"
"""Where a recipe records its target metric at steps (``{"step", "name", "value", "low", "high"}``): plotted with
the training curve."""


def plot_metrics(output_dir: str, keys: tuple[str, ...] = ("loss", "reward"), title: str | None = None) -> Path | None:
    """Every logged metric whose name contains one of ``keys``, against the step, in one PNG; the target metric
    (``target_metric.jsonl``, with its 95% interval) on a second axis when a recipe measured it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(output_dir) / METRICS
    if not path.is_file():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    series = training_curves(rows, keys)
    if not series:
        return None
    figure, axis = plt.subplots(figsize=(7, 4))
    for name, points in sorted(series.items()):
        axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
    axis.set(xlabel="step", title=title or Path(output_dir).name)
    handles, labels = axis.get_legend_handles_labels()
    target = Path(output_dir) / TARGET
    if target.is_file():
        points = [json.loads(line) for line in target.read_text().splitlines() if line.strip()]
        if points:
            second = axis.twinx()
            steps, values = [p["step"] for p in points], [p["value"] for p in points]
            # a bootstrap interval of a biased statistic (ECE) need not contain the estimate: bars never negative
            errors = [[max(0.0, v - p.get("low", v)) for v, p in zip(values, points, strict=True)],
                      [max(0.0, p.get("high", v) - v) for v, p in zip(values, points, strict=True)]]  # fmt: skip
            second.errorbar(steps, values, yerr=errors, color="black", marker="s", capsize=4, linestyle=":",
                            label=f"{points[-1]['name']} (held-out, 95% CI)")  # fmt: skip
            second.set_ylabel(points[-1]["name"])
            more_handles, more_labels = second.get_legend_handles_labels()
            handles, labels = handles + more_handles, labels + more_labels
    axis.legend(handles, labels, fontsize=7)
    out = Path(output_dir) / PLOT
    figure.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return out
