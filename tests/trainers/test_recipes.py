"""The pieces of a training recipe, checked by hand: the generated arithmetic task, bootstrap intervals, the
recipe file's checks, what SFT trains on, the progress bar and the plot with the target metric."""

import io
import json
import re

import pytest
from tqdm import tqdm

from thoughtgraph.evals.arithmetic import all_problems, write_splits
from thoughtgraph.evals.datasets import load_dataset
from thoughtgraph.trainers.common import (
    PLOT,
    TARGET,
    SetupError,
    check_model,
    plot_metrics,
    progress_callback,
    training_curves,
)
from thoughtgraph.trainers.evidence import bootstrap_interval, paired_difference, percentile
from thoughtgraph.trainers.recipe import (
    accuracy_evidence,
    calibration_evidence,
    curve_folder,
    load_recipe,
    rollout_evidence,
)
from thoughtgraph.trainers.sft import stated


def test_arithmetic_splits_are_disjoint_and_their_golds_are_the_arithmetic(tmp_path):
    assert len(all_problems(0)) == 2 * (20 * 20 + 8 * 8)
    write_splits(tmp_path, train=30, test=20, seed=3)
    train, test = (load_dataset("arith", split, data_dir=tmp_path).problems for split in ("train", "test"))
    assert (len(train), len(test)) == (30, 20)
    assert not {p.question for p in train} & {p.question for p in test}
    for problem in train + test:
        a, b = map(int, re.findall(r"\d+", problem.question)[:2])
        expected = a * b if ("*" in problem.question or "bags" in problem.question) else a + b
        assert problem.gold == str(expected), problem.question
    assert all_problems(3) == all_problems(3) and all_problems(3) != all_problems(4)
    with pytest.raises(ValueError, match="at most 928"):
        write_splits(tmp_path, train=900, test=100)


def test_percentile_interpolates_as_numpy_does():
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert percentile(values, 0.0) == 1.0 and percentile(values, 1.0) == 5.0
    assert percentile(values, 0.5) == 3.0
    assert percentile(values, 0.025) == pytest.approx(1.1)  # position 0.1 between 1 and 2
    assert percentile([7.0], 0.3) == 7.0


def test_bootstrap_of_a_constant_is_that_constant_and_of_a_coin_brackets_its_mean():
    assert bootstrap_interval([0.4] * 10, lambda v: sum(v) / len(v)) == pytest.approx((0.4, 0.4))
    coin = [1.0, 0.0] * 50  # mean 0.5, standard error 0.05: the 95% interval is about 0.40-0.60
    low, high = bootstrap_interval(coin, lambda v: sum(v) / len(v))
    assert 0.38 < low < 0.43 and 0.57 < high < 0.62
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_interval([], len)


def test_paired_difference_uses_only_shared_problems():
    before = {"a": 0.0, "b": 1.0, "c": 0.0, "gone": 1.0}
    after = {"a": 1.0, "b": 1.0, "c": 1.0, "new": 0.0}
    change = paired_difference(before, after)
    assert change["pairs"] == 3 and change["difference"] == pytest.approx(2 / 3)
    assert 0.0 <= change["low"] <= 2 / 3 <= change["high"] <= 1.0
    same = paired_difference({"a": 1.0, "b": 0.0}, {"a": 1.0, "b": 0.0})
    assert (same["difference"], same["low"], same["high"]) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="share no problem"):
        paired_difference({"a": 1.0}, {"b": 1.0})


def _write_samples(folder, rows, calibration=None):
    folder.mkdir(parents=True)
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if calibration is not None:
        (folder / "calibration.json").write_text(json.dumps(calibration))


def test_accuracy_evidence_meets_its_target_only_with_the_gain(tmp_path):
    # 20 problems: 4 right before, 6 after (2 more): +10 points
    _write_samples(tmp_path / "before", [{"id": str(i), "correct": i < 4} for i in range(20)])
    _write_samples(tmp_path / "after", [{"id": str(i), "correct": i < 6} for i in range(20)])
    evidence = accuracy_evidence(tmp_path / "before", tmp_path / "after", 0.05)
    assert evidence["before"]["value"] == pytest.approx(0.2) and evidence["after"]["value"] == pytest.approx(0.3)
    assert evidence["change"]["difference"] == pytest.approx(0.1) and evidence["met"]
    assert not accuracy_evidence(tmp_path / "before", tmp_path / "after", 0.15)["met"]


def test_calibration_evidence_needs_the_fall_and_intervals_apart(tmp_path):
    # before: 40 replies at confidence 0.95, 10 right: ECE = |0.25 - 0.95| = 0.70
    before = [{"id": str(i), "confidence": 0.95, "correct": i < 10} for i in range(40)]
    # after: confidence 0.3 on the same accuracy: ECE = 0.05
    after = [{"id": str(i), "confidence": 0.3, "correct": i < 10} for i in range(40)]
    summary = {"accuracy": 0.25, "mean_confidence": 0.0}
    _write_samples(tmp_path / "before", before, summary)
    _write_samples(tmp_path / "after", after, summary)
    evidence = calibration_evidence(tmp_path / "before", tmp_path / "after", 1 / 3)
    assert evidence["before"]["value"] == pytest.approx(0.70) and evidence["after"]["value"] == pytest.approx(0.05)
    assert evidence["change"]["fall"] == pytest.approx(0.65 / 0.70) and evidence["met"]
    # the same replies after: no fall, not met
    assert not calibration_evidence(tmp_path / "before", tmp_path / "before", 1 / 3)["met"]


def test_rollout_evidence_pairs_rewards_and_counts_changed_first_choices(tmp_path):
    # 30 problems, three times one pattern of 10 (k = i % 10). Before: the planner names "continue" everywhere,
    # k = 5, 6 right and stated (1.2), the rest stated but wrong (0.2): mean 0.4. After: "conclude" on k = 0-5, of
    # which k = 0-4 now right, and k = 6 still right: mean 0.8.
    def row(i, strategy, right):
        return {"id": str(i), "first_strategy": strategy, "named": True, "reward": 1.2 if right else 0.2,
                "correct": right, "stated": True, "strategies": [strategy]}  # fmt: skip

    _write_samples(tmp_path / "before", [row(i, "continue", i % 10 in (5, 6)) for i in range(30)])
    _write_samples(
        tmp_path / "after",
        [row(i, "conclude" if i % 10 < 6 else "continue", i % 10 < 5 or i % 10 == 6) for i in range(30)],
    )
    evidence = rollout_evidence(tmp_path / "before", tmp_path / "after")
    assert evidence["before"]["value"] == pytest.approx(0.4) and evidence["after"]["value"] == pytest.approx(0.8)
    assert evidence["before"]["correct"] == pytest.approx(0.2) and evidence["after"]["correct"] == pytest.approx(0.6)
    # differences: +1 on k = 0-4, -1 on k = 5, 0 elsewhere: mean 0.4 (standard error about 0.12)
    assert evidence["change"]["difference"] == pytest.approx(0.4) and evidence["change"]["choices_changed"] == 18
    assert evidence["after"]["first_strategies"] == {"conclude": 18, "continue": 12}
    assert evidence["change"]["low"] > 0 and evidence["met"]
    # the same rollouts after: no gain, nothing changed
    unchanged = rollout_evidence(tmp_path / "before", tmp_path / "before")
    assert unchanged["change"]["choices_changed"] == 0 and not unchanged["met"]


def test_an_rsim_recipe_plots_its_last_phase(tmp_path):
    recipe = load_recipe_text(tmp_path, "trainer: rsim\ntrainer_config: {schedule: [planner, reasoner, planner]}\n")
    assert curve_folder(recipe, tmp_path) == tmp_path / "phase-3-planner"
    assert curve_folder(load_recipe_text(tmp_path, "trainer: rsim\ntrainer_config: {}\n"), tmp_path).name == (
        "phase-2-reasoner"  # the trainer's default schedule: planner, reasoner
    )
    assert curve_folder(load_recipe_text(tmp_path, "trainer: sft\ntrainer_config: {}\n"), tmp_path) == tmp_path


def load_recipe_text(folder, text):
    path = folder / "recipe.yaml"
    path.write_text(text)
    return load_recipe(path)


def test_a_recipe_file_with_a_wrong_key_trainer_or_owned_setting_is_refused(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("trainer: sft\ntrainer_config: {}\ntest_problem: 5\n")
    with pytest.raises(SetupError, match=r"unknown recipe key.*test_problem"):
        load_recipe(path)
    path.write_text("trainer: dpo\ntrainer_config: {}\n")
    with pytest.raises(SetupError, match="'dpo' has no recipe"):
        load_recipe(path)
    path.write_text("trainer: sft\ntrainer_config: {output_dir: elsewhere}\n")
    with pytest.raises(SetupError, match="may not set output_dir"):
        load_recipe(path)
    path.write_text("trainer: sft\n")
    with pytest.raises(SetupError, match="trainer_config"):
        load_recipe(path)
    with pytest.raises(SetupError, match="cannot read"):
        load_recipe(tmp_path / "missing.yaml")


def test_the_shipped_recipes_load():
    from thoughtgraph.trainers.recipe import TRAINERS

    from .test_trainers_real import REPO

    shipped = sorted((REPO / "trainers" / "configs" / "recipes").glob("*.yaml"))
    assert {load_recipe(path).trainer for path in shipped} == set(TRAINERS)


def test_sft_completions_end_with_a_stated_answer():
    assert stated({"reasoning": "2 + 3 = 5.\nThe answer is 5.", "answer": "5"}) == "2 + 3 = 5.\nThe answer is 5."
    assert stated({"reasoning": "So, the answer is 5.", "answer": "5"}) == "So, the answer is 5."
    assert stated({"reasoning": " 2 + 3 = 5 ", "answer": "5"}) == "2 + 3 = 5\nThe answer is 5."
    assert stated({"reasoning": "2 + 3 = 5", "answer": None}) == "2 + 3 = 5"


def test_a_model_folder_without_weights_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(SetupError, match="no weights"):
        check_model(str(tmp_path))
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"")
    assert check_model(str(tmp_path)) == tmp_path


class _State:
    is_world_process_zero = True


def test_the_progress_bar_shows_reward_and_loss():
    callback = progress_callback()
    callback.training_bar = tqdm(total=10, file=io.StringIO())
    logs = {"loss": 0.25, "reward": 1.5, "reward_std": 0.3, "rewards/gg_confidence_reward/mean": 1.5, "lr": 1e-4}
    callback.on_log(None, _State(), None, logs=logs)
    assert callback.training_bar.postfix == "loss=0.25, reward=1.5, gg_confidence_reward=1.5"
    callback.on_log(None, _State(), None, logs={"train_loss": 0.1, "train_runtime": 9.0})  # end-of-run averages
    assert callback.training_bar.postfix == "loss=0.25, reward=1.5, gg_confidence_reward=1.5"


def test_training_png_carries_the_target_metric(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.5}\n')
    assert plot_metrics(str(tmp_path)) == tmp_path / PLOT
    without = (tmp_path / PLOT).read_bytes()
    points = [{"step": 0, "name": "ece", "value": 0.6, "low": 0.5, "high": 0.7},
              {"step": 2, "name": "ece", "value": 0.3, "low": 0.35, "high": 0.4}]  # fmt: skip
    (tmp_path / TARGET).write_text("".join(json.dumps(p) + "\n" for p in points))
    assert plot_metrics(str(tmp_path)) == tmp_path / PLOT
    assert (tmp_path / PLOT).read_bytes() != without


def test_the_curves_leave_out_spreads_end_of_run_averages_and_repeats():
    rows = [
        {"step": 1, "loss": 0.5, "reward": 0.2, "rewards/gg/mean": 0.2, "reward_std": 0.1, "frac_reward_zero_std": 0.0},
        {"step": 2, "loss": 0.4, "reward": 0.3, "rewards/gg/mean": 0.3, "reward_std": 0.1, "frac_reward_zero_std": 0.0},
        {"step": 2, "train_loss": 0.45, "train_runtime": 10.0},
    ]
    assert training_curves(rows, ("loss", "reward")) == {"loss": [(1, 0.5), (2, 0.4)], "reward": [(1, 0.2), (2, 0.3)]}
    rows[0]["rewards/format/mean"], rows[1]["rewards/format/mean"] = 0.0, 1.0  # two reward functions:
    rows[1]["reward"] = 1.3  # the total differs from each, and each keeps its own curve
    names = {"loss", "reward", "rewards/gg/mean", "rewards/format/mean"}
    assert set(training_curves(rows, ("loss", "reward"))) == names


def test_grpo_warns_once_when_three_steps_in_a_row_have_nothing_to_learn():
    from thoughtgraph.trainers.common import FlatRewardWatch

    watch = FlatRewardWatch()
    seen = [watch.see({"frac_reward_zero_std": f}) for f in (1.0, 1.0, 0.5, 1.0, 1.0)]
    assert seen == [None] * 5  # a step with some spread resets the count
    assert "same reward" in watch.see({"frac_reward_zero_std": 1.0})  # the third flat step in a row
    assert watch.see({"frac_reward_zero_std": 1.0}) is None  # once
    assert FlatRewardWatch().see({"loss": 0.3}) is None  # SFT logs carry no reward groups


def test_checkpoints_before_the_last_are_measured_in_step_order(tmp_path):
    from thoughtgraph.trainers.recipe import checkpoint_steps

    for step in (10, 5, 20):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-notes.txt").write_text("")  # not a folder: ignored
    (tmp_path / "checkpoint-best").mkdir()  # a folder without a step number: ignored, not a crash
    assert checkpoint_steps(tmp_path, 20) == [(5, tmp_path / "checkpoint-5"), (10, tmp_path / "checkpoint-10")]
    with pytest.raises(SetupError, match="measure_checkpoints needs one rSIM phase"):  # default: planner, reasoner
        load_recipe_text(tmp_path, "trainer: rsim\nmeasure_checkpoints: true\ntrainer_config: {}\n")
    one_phase = "trainer: rsim\nmeasure_checkpoints: true\ntrainer_config: {schedule: [planner]}\n"
    assert load_recipe_text(tmp_path, one_phase).measure_checkpoints


def test_an_rsim_checkpoint_is_its_phase_agents_adapter_and_a_finished_run_names_its_own(tmp_path):
    from thoughtgraph.trainers.recipe import Recipe, _trained_adapters

    recipe = Recipe("rsim", {"schedule": ["reasoner"]})
    assert _trained_adapters(recipe, None) == {}
    checkpoint = tmp_path / "phase-1-reasoner" / "checkpoint-5"
    checkpoint.mkdir(parents=True)
    assert _trained_adapters(recipe, checkpoint) == {"reasoner": str(checkpoint)}
    (tmp_path / "phases.json").write_text(json.dumps({"adapters": {"planner": None, "reasoner": "r"}}))
    assert _trained_adapters(recipe, tmp_path) == {"planner": None, "reasoner": "r"}
    with pytest.raises(FileNotFoundError):  # a finished run without phases.json is not read as a checkpoint
        _trained_adapters(recipe, tmp_path / "phase-1-reasoner")
    assert _trained_adapters(Recipe("rsim", {}), checkpoint) == {"planner": str(checkpoint)}  # rsim's default
