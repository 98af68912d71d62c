"""A dataset is one DatasetSpec: registering it makes it loadable and gradable by the eval runner, through the
real grading process (which imports the spec's scorer by name); a scorer it could not import is refused at
declaration."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from thoughtgraph.backends.scripted import ScriptedBackend, ScriptRule
from thoughtgraph.evals.datasets import DATASETS, DatasetSpec, Problem, grade, load_dataset, register_dataset
from thoughtgraph.evals.runner import EvalConfig, read_samples, run_eval
from thoughtgraph.evals.scoring import GradingInput, Score


def build_capital(record: dict[str, Any], index: int, split: str) -> Problem:
    if "country" not in record:
        raise ValueError("record has no `country`")
    question = f"What is the capital of {record['country']}?"
    return Problem(f"capitals/{split}/{index}", question, record["capital"], question + " Answer with the city.")


def score_city(item: GradingInput) -> Score:
    """The answer's words, case and spaces aside, against the gold city."""
    prediction = " ".join((item.answer or "").split()).lower() or None
    return Score(prediction, prediction == item.gold.lower())


CAPITALS = DatasetSpec(
    "capitals",
    files={"test": "capitals/test.jsonl"},
    hub=None,
    build=build_capital,
    score=score_city,
    answer_pattern="[A-Za-z ]{1,40}",
)


@pytest.fixture
def capitals(tmp_path):
    register_dataset(CAPITALS)
    folder = tmp_path / "data" / "capitals"
    folder.mkdir(parents=True)
    rows = [("France", "Paris"), ("Peru", "Lima"), ("Kenya", "Nairobi")]
    folder.joinpath("test.jsonl").write_text("".join(json.dumps({"country": c, "capital": k}) + "\n" for c, k in rows))
    yield tmp_path / "data"
    del DATASETS["capitals"]


def test_a_registered_dataset_loads_and_names_a_bad_record(capitals):
    loaded = load_dataset("capitals", data_dir=capitals)
    assert [p.gold for p in loaded.problems] == ["Paris", "Lima", "Nairobi"]
    with (capitals / "capitals" / "test.jsonl").open("a") as handle:
        handle.write(json.dumps({"capital": "Oslo"}) + "\n")
    with pytest.raises(ValueError, match=r"test\.jsonl:4: record has no `country`"):
        load_dataset("capitals", data_dir=capitals)


def test_a_registered_dataset_is_graded_by_its_own_scorer_in_the_grading_process(capitals, tmp_path):
    backend = ScriptedBackend(
        [
            ScriptRule("France(.|\\n)*only the final answer", ["  paris "]),
            ScriptRule("Peru(.|\\n)*only the final answer", ["Cusco"]),
            ScriptRule("Kenya(.|\\n)*only the final answer", ["NAIROBI"]),
        ],
        default="The capital city is the seat of government.",
    )
    config = EvalConfig("capitals", method="cot", data_dir=str(capitals), out=str(tmp_path / "runs"), run_name="r")
    results = asyncio.run(run_eval(config, backend=backend, progress=False))
    samples = {s["gold"]: s for s in read_samples(tmp_path / "runs" / "r" / "samples.jsonl")}
    assert results["counts"] == {"solved": 2, "wrong": 1, "failed": 0}
    assert samples["Paris"]["prediction"] == "paris" and samples["Paris"]["correct"] is True
    assert samples["Lima"]["correct"] is False


def test_built_in_datasets_are_graded_by_name_and_an_unknown_one_is_named():
    assert grade(GradingInput("gsm8k", "1,000", "The answer is 1000", "1000")).correct is True
    assert grade(GradingInput("aqua", None, "so the answer is (C)", "C")).prediction == "C"
    with pytest.raises(ValueError, match="no scoring rule for dataset 'nope'"):
        grade(GradingInput("nope", "1", "", "1"))


def test_a_scorer_the_grading_process_cannot_import_is_refused_where_the_spec_is_declared():
    def local_scorer(item: GradingInput) -> Score:
        return Score(item.answer, True)

    with pytest.raises(ValueError, match="must be a module-level function"):
        DatasetSpec("bad", {"test": "x"}, None, build_capital, local_scorer, None)
    with pytest.raises(ValueError, match="already registered"):
        register_dataset(DatasetSpec("gsm8k", {"test": "x"}, None, build_capital, score_city, None))
