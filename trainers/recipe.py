"""Recipes: one command that trains and shows, on held-out problems, whether the trainer moved its own metric::

    python -m thoughtgraph.trainers.recipe trainers/configs/recipes/sft_arith.yaml --out runs/recipe-sft
    python -m thoughtgraph.trainers.recipe trainers/configs/recipes/gg_calibrate_arith.yaml --out runs/recipe-gg

A recipe writes the generated arithmetic task (``evals.arithmetic``: train and test hold disjoint questions),
measures the base model on the test split with the project's own tools, trains, measures the trained adapter the
same way, and writes ``recipe.json`` (before, after, 95% bootstrap intervals, whether the recipe's target was
met, seconds per stage) and ``training.png`` (loss and reward by step, the target metric before and after).
Every stage leaves its folder in ``--out`` and is skipped when run again, so a killed recipe resumes.

- ``sft``: target accuracy (``evals``' graders, greedy chain of thought, the hf backend). The traces are the
  base model's own correct chains on the train split (``evals run``; a rejection-sampling fine-tune, as STaR's
  first iteration); the recipe's target is +5 points.
- ``gg_calibrate``: target ECE of final-step confidence (``trainers.calibration``, the hf backend); the target
  is a fall by a third with the 95% intervals of before and after apart.

- ``rsim``: target the planner phase's reward on held-out problems (``trainers.rsim.held_out_rollouts``: the
  planner names the first strategy greedily, ``rsim`` continues with the reasoner, the reward is the training
  reward); met when the paired bootstrap interval of after - before lies above 0 and the planner's first
  choices changed on at least one problem. ``recipe.json`` also counts the first choices before and after.

Before and after run on the same backend (hf, the exported model with and without the adapter), so the
difference is the adapter's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from thoughtgraph.trainers.common import PLOT, TARGET, SetupError, check_model, plot_metrics, saved_checkpoints
from thoughtgraph.trainers.evidence import bootstrap_interval, paired_difference

TRAINERS = ("sft", "gg_calibrate", "rsim")
DATASET = "arith"


@dataclass
class Recipe:
    trainer: str
    """Which trainer: ``sft``, ``gg_calibrate`` or ``rsim``."""
    trainer_config: dict[str, Any]
    """The trainer's own config keys (as in ``trainers/configs/*.yaml``); model, data and output are the recipe's."""
    model: str = "runs/smollm2-hf"
    """An HF model folder; made from ``base`` with ``thoughtgraph models export`` when missing."""
    base: str = "smollm2"
    train_problems: int = 240
    test_problems: int = 150
    task_seed: int = 0
    measure_tokens: int = 128
    """Generation budget of each measured reply (the chain; the trained replies are as long or shorter)."""
    measure_concurrency: int = 16
    """Replies decoded together by the hf backend."""
    measure_checkpoints: bool = False
    """Also measure the target at every saved checkpoint before the last (``sft``, ``gg_calibrate``, ``rsim`` with
    one phase): the curve of ``training.png``; each measurement costs as much as ``before`` (1-6 minutes on 2
    cores)."""
    traces_backend: str = "llamacpp:smollm2"
    """``sft``: the backend that writes the base model's chains on the train split (the same weights, faster)."""
    target_gain: float = 0.05
    """``sft``: accuracy points the recipe must add."""
    target_fall: float = 1 / 3
    """``gg_calibrate``: share of the ECE the recipe must remove."""
    description: str = ""


def load_recipe(path: str | Path) -> Recipe:
    """The recipe in ``path``; an unknown key or trainer is an error naming it."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise SetupError(f"cannot read the recipe {path}: {error}") from None
    if not isinstance(raw, dict):
        raise SetupError(f"{path}: a recipe is a mapping of keys to values")
    known = {f.name for f in fields(Recipe)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SetupError(f"{path}: unknown recipe key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    try:
        recipe = Recipe(**raw)
    except TypeError as error:
        raise SetupError(f"{path}: {error}") from None
    if recipe.trainer not in TRAINERS:
        raise SetupError(f"{path}: trainer {recipe.trainer!r} has no recipe; recipes exist for {', '.join(TRAINERS)}")
    if recipe.measure_checkpoints and recipe.trainer == "rsim" and len(_schedule(recipe)) != 1:
        raise SetupError(
            f"{path}: measure_checkpoints needs one rSIM phase (schedule: [planner] or [reasoner]): a checkpoint of "
            "a later phase is one agent's adapter without the others'"
        )
    owned = sorted({"model", "output_dir", "dataset", "data_dir", "split", "from_runs"} & set(recipe.trainer_config))
    if owned:
        raise SetupError(f"{path}: trainer_config may not set {', '.join(owned)}; the recipe sets them")
    return recipe


class Stages:
    """Each stage's result is a file in ``out``: a stage whose file exists is not run again (resume)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.log_path = out / "stages.json"
        self.seconds: dict[str, float] = json.loads(self.log_path.read_text()) if self.log_path.is_file() else {}

    def run(self, name: str, done: Path, work: Any) -> None:
        if done.exists():
            print(f"[recipe] {name}: already done ({done})", file=sys.stderr)
            return
        print(f"[recipe] {name} ...", file=sys.stderr)
        started = time.perf_counter()
        work()
        self.seconds[name] = round(time.perf_counter() - started, 1)
        self.log_path.write_text(json.dumps(self.seconds, indent=1))


def _hf_spec(model: Path, adapter: Path | None) -> str:
    return f"hf:{model}" + (f"#adapter={adapter}" if adapter else "")


def _measure_accuracy(recipe: Recipe, model: Path, adapter: Path | None, out: Path, data: Path) -> None:
    from thoughtgraph.evals.runner import EvalConfig, run_eval

    config = EvalConfig(
        dataset=DATASET, backend=_hf_spec(model, adapter), limit=recipe.test_problems,
        concurrency=recipe.measure_concurrency, method_options={"chain_tokens": recipe.measure_tokens},
        out=str(out.parent), run_name=out.name, data_dir=str(data),
    )  # fmt: skip
    asyncio.run(run_eval(config))


def _measure_calibration(recipe: Recipe, model: Path, adapter: Path | None, out: Path, data: Path) -> None:
    from thoughtgraph.backends import create_backend
    from thoughtgraph.trainers.calibration import measure

    backend = create_backend(_hf_spec(model, adapter), max_batch=recipe.measure_concurrency)
    limit, tokens = recipe.test_problems, recipe.measure_tokens
    asyncio.run(measure(backend, DATASET, limit, out, max_tokens=tokens, data_dir=str(data)))
    (out / "done").write_text("")


def _rollout_arguments(recipe: Recipe) -> Any:
    from thoughtgraph.trainers.rsim import RSIMTrainingArguments

    known = {f.name for f in fields(RSIMTrainingArguments)}
    return RSIMTrainingArguments(**{k: v for k, v in recipe.trainer_config.items() if k in known})


def _measure_rollouts(recipe: Recipe, model: Path, trained: Path | None, out: Path, data: Path) -> None:
    from thoughtgraph.backends import create_backend
    from thoughtgraph.evals.datasets import load_dataset
    from thoughtgraph.trainers.rsim import AGENTS, held_out_rollouts

    adapters = _trained_adapters(recipe, trained)
    specs = {agent: _hf_spec(model, Path(adapters[agent]) if adapters.get(agent) else None) for agent in AGENTS}
    loaded = {spec: create_backend(spec, max_batch=recipe.measure_concurrency) for spec in set(specs.values())}
    backends = {agent: loaded[spec] for agent, spec in specs.items()}  # one model when both are the base
    problems = load_dataset(DATASET, "test", data_dir=str(data)).problems[: recipe.test_problems]
    try:
        rows = asyncio.run(held_out_rollouts(
            problems, DATASET, planner=backends["planner"], reasoner=backends["reasoner"],
            arguments=_rollout_arguments(recipe), concurrency=recipe.measure_concurrency,
        ))  # fmt: skip
    finally:  # a failed measurement does not leave the models loaded
        for backend in loaded.values():
            backend.close()
    out.mkdir(parents=True, exist_ok=True)
    (out / "samples.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (out / "done").write_text("")


def _schedule(recipe: Recipe) -> list[str]:
    """rSIM's phases as the trainer reads them (its own default when the recipe names none)."""
    return list(_rollout_arguments(recipe).schedule)


def _trained_adapters(recipe: Recipe, trained: Path | None) -> dict[str, str]:
    """Each rSIM agent's adapter: a checkpoint (``checkpoint-N``) of a one-phase run is that phase's agent's (the
    other agent is the base model); a finished run names its own in ``phases.json``."""
    if trained is None:
        return {}
    if trained.name.startswith("checkpoint-"):
        return {_schedule(recipe)[0]: str(trained)}
    return json.loads((trained / "phases.json").read_text())["adapters"]


def _samples(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines() if line.strip()]


def accuracy_evidence(before: Path, after: Path, target_gain: float) -> dict[str, Any]:
    """Accuracy before and after (with intervals), the paired difference, and whether it gained ``target_gain``."""

    def correct(folder: Path) -> dict[str, float]:
        return {s["id"]: float(bool(s.get("correct"))) for s in _samples(folder)}

    right_before, right_after = correct(before), correct(after)
    change = paired_difference(right_before, right_after)
    return {
        "metric": "accuracy", "before": _mean(right_before), "after": _mean(right_after), "change": change,
        "target": f"accuracy +{target_gain:.0%} or more", "met": change["difference"] >= target_gain,
    }  # fmt: skip


def _mean(values: dict[str, float]) -> dict[str, Any]:
    """The mean of per-problem values with its bootstrap interval."""
    low, high = bootstrap_interval(list(values.values()), lambda v: sum(v) / len(v))
    return {"value": sum(values.values()) / len(values), "low": low, "high": high, "n": len(values)}


def rollout_evidence(before: Path, after: Path) -> dict[str, Any]:
    """Held-out rollout reward before and after (with intervals), their paired difference, and the planner's
    first choices; met when the difference's interval lies above 0 and some first choice changed."""
    rows_before = {row["id"]: row for row in _samples(before)}
    rows_after = {row["id"]: row for row in _samples(after)}

    def rewards(rows: dict[str, dict[str, Any]]) -> dict[str, float]:
        return {key: float(row["reward"]) for key, row in rows.items()}

    def described(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
        share = {k: sum(float(r[k]) for r in rows.values()) / len(rows) for k in ("correct", "stated", "named")}
        firsts = Counter(row["first_strategy"] for row in rows.values())
        return {**_mean(rewards(rows)), **share, "first_strategies": dict(firsts.most_common())}

    change = paired_difference(rewards(rows_before), rewards(rows_after))
    shared = set(rows_before) & set(rows_after)
    change["choices_changed"] = sum(rows_before[k]["first_strategy"] != rows_after[k]["first_strategy"] for k in shared)
    return {
        "metric": "rollout_reward", "before": described(rows_before), "after": described(rows_after),
        "change": change, "target": "rollout reward up (paired 95% interval above 0) and first choices changed",
        "met": change["low"] > 0 and change["choices_changed"] > 0,
    }  # fmt: skip


def calibration_evidence(before: Path, after: Path, target_fall: float) -> dict[str, Any]:
    """ECE before and after with bootstrap intervals over their replies; met when it fell by ``target_fall`` and
    the intervals do not overlap."""
    from thoughtgraph.trainers.calibration import expected_calibration_error

    def described(folder: Path) -> dict[str, Any]:
        rows = [(s["confidence"], s["correct"]) for s in _samples(folder)]

        def ece(sample: list[tuple[float, bool]]) -> float:
            return expected_calibration_error([c for c, _ in sample], [r for _, r in sample])

        low, high = bootstrap_interval(rows, ece)
        summary = json.loads((folder / "calibration.json").read_text())
        return {"value": ece(rows), "low": low, "high": high, "n": len(rows), "accuracy": summary["accuracy"],
                "mean_confidence": summary["mean_confidence"]}  # fmt: skip

    first, last = described(before), described(after)
    fell = (first["value"] - last["value"]) / first["value"] if first["value"] else 0.0
    return {
        "metric": "ece", "before": first, "after": last, "change": {"fall": fell},
        "target": f"ECE down by {target_fall:.0%} or more, 95% intervals apart",
        "met": fell >= target_fall and last["high"] < first["low"],
    }  # fmt: skip


@dataclass(frozen=True)
class Measurement:
    """How a trainer's recipe measures its target: ``run`` writes a folder, complete once ``done`` exists in it."""

    run: Callable[[Recipe, Path, Path | None, Path, Path], None]
    done: str
    evidence: Callable[[Recipe, Path, Path], dict[str, Any]]


MEASUREMENTS = {
    "sft": Measurement(_measure_accuracy, "results.json", lambda r, b, a: accuracy_evidence(b, a, r.target_gain)),
    "gg_calibrate": Measurement(
        _measure_calibration, "done", lambda r, b, a: calibration_evidence(b, a, r.target_fall)
    ),
    "rsim": Measurement(_measure_rollouts, "done", lambda r, b, a: rollout_evidence(b, a)),
}
TRAINED = {"rsim": "phases.json"}
"""The file a finished training run leaves in ``train/`` (default: the adapter)."""


def curve_folder(recipe: Recipe, train: Path) -> Path:
    """Where the run's checkpoints and metrics are: ``train/`` itself, or rSIM's last phase folder."""
    if recipe.trainer != "rsim":
        return train
    schedule = _schedule(recipe)
    return train / f"phase-{len(schedule)}-{schedule[-1]}"


def _train_command(recipe: Recipe, model: Path, out: Path, data: Path) -> list[str]:
    config = {**recipe.trainer_config, "model": str(model), "output_dir": str(out / "train")}
    if recipe.trainer != "sft":
        config.update(dataset=DATASET, split="train", data_dir=str(data))
    path = out / "train-config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=True))
    command = [sys.executable, "-m", f"thoughtgraph.trainers.{recipe.trainer}", "--config", str(path)]
    if recipe.trainer == "sft":
        command += ["--from_runs", str(out / "traces")]
    if any((out / "train").glob("checkpoint-*")) or any((out / "train").glob("phase-*/checkpoint-*")):
        command += ["--resume", "true"]
    return command


def run_recipe(recipe: Recipe, out: Path) -> dict[str, Any]:
    from thoughtgraph.evals.arithmetic import write_splits

    out.mkdir(parents=True, exist_ok=True)
    stages = Stages(out)
    data = out / "data"
    model = Path(recipe.model)
    if not (model / "config.json").is_file():
        stages.run("export", model / "config.json", lambda: _run([sys.executable, "-m", "thoughtgraph", "models",
                                                                  "export", recipe.base, str(model)]))  # fmt: skip
    check_model(str(model))
    sizes = {"train": recipe.train_problems, "test": recipe.test_problems, "seed": recipe.task_seed}
    stages.run("data", data / "arith" / "test.jsonl", lambda: write_splits(data, **sizes))
    measurement, train = MEASUREMENTS[recipe.trainer], out / "train"
    before, after = out / "before", out / "after"
    stages.run("before", before / measurement.done, lambda: measurement.run(recipe, model, None, before, data))
    if recipe.trainer == "sft":
        stages.run("traces", out / "traces" / "results.json", lambda: _traces(recipe, out, data))
    trained = train / TRAINED.get(recipe.trainer, "adapter_model.safetensors")
    stages.run("train", trained, lambda: _run(_train_command(recipe, model, out, data)))
    stages.run("after", after / measurement.done, lambda: measurement.run(recipe, model, train, after, data))
    evidence = measurement.evidence(recipe, before, after)
    curves = curve_folder(recipe, train)
    steps = _final_step(curves)
    measured = [(0, evidence["before"])]
    for step, checkpoint in checkpoint_steps(curves, steps) if recipe.measure_checkpoints else []:
        at = out / f"at-step-{step}"

        def measure_checkpoint(at: Path = at, checkpoint: Path = checkpoint) -> None:
            measurement.run(recipe, model, checkpoint, at, data)

        stages.run(f"at-step-{step}", at / measurement.done, measure_checkpoint)
        measured.append((step, measurement.evidence(recipe, before, at)["after"]))
    measured.append((steps, evidence["after"]))
    points = [
        {"step": step, "name": evidence["metric"], **{k: point[k] for k in ("value", "low", "high")}}
        for step, point in measured
    ]
    (curves / TARGET).write_text("".join(json.dumps(p) + "\n" for p in points))
    plot_metrics(str(curves), title=f"{recipe.trainer} recipe ({out.name}): {evidence['metric']} before/after")
    if (curves / PLOT).is_file():
        shutil.copy(curves / PLOT, out / PLOT)
    report = {"recipe": asdict(recipe), "model": str(model), "optimizer_steps": steps, "seconds": stages.seconds,
              "total_seconds": round(sum(stages.seconds.values()), 1), **evidence}  # fmt: skip
    (out / "recipe.json").write_text(json.dumps(report, indent=1))
    return report


def _traces(recipe: Recipe, out: Path, data: Path) -> None:
    from thoughtgraph.evals.runner import EvalConfig, run_eval

    config = EvalConfig(
        dataset=DATASET, split="train", backend=recipe.traces_backend, limit=recipe.train_problems,
        method_options={"chain_tokens": recipe.measure_tokens}, out=str(out), run_name="traces", data_dir=str(data),
    )  # fmt: skip
    asyncio.run(run_eval(config))


def checkpoint_steps(curves: Path, final: int) -> list[tuple[int, Path]]:
    """(step, folder) of each saved checkpoint before ``final``, in step order (the last one is ``after``)."""
    return [(step, folder) for step, folder in saved_checkpoints(curves) if step < final]


def _final_step(train: Path) -> int:
    states = [folder / "trainer_state.json" for _, folder in saved_checkpoints(train)]
    states = [state for state in states if state.is_file()]
    return json.loads(states[-1].read_text())["global_step"] if states else 0


def _run(command: list[str]) -> None:
    environment = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(command, env=environment)
    if result.returncode != 0:
        raise SetupError(f"{' '.join(command[:4])} ... failed with exit status {result.returncode}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="Run folder (a killed recipe resumes from it).")
    args = parser.parse_args(argv)
    try:
        report = run_recipe(load_recipe(args.recipe), args.out)
    except SetupError as error:
        sys.exit(f"error: {error}")
    before, after = report["before"], report["after"]
    print(f"{report['metric']}: before {before['value']:.3f} ({before['low']:.3f}-{before['high']:.3f}), "
          f"after {after['value']:.3f} ({after['low']:.3f}-{after['high']:.3f}); target ({report['target']}): "
          f"{'met' if report['met'] else 'NOT met'}; {report['total_seconds']:.0f} s")  # fmt: skip
    print(f"written to {args.out}/recipe.json and {args.out}/{PLOT}")


if __name__ == "__main__":
    main()
