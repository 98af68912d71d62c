import json

import pytest

from thoughtgraph.evals.datasets import DataError, load_dataset, select


@pytest.mark.parametrize(
    ("name", "split", "count"),
    [("gsm8k", "test", 1319), ("math500", "test", 500), ("math", "test", 5000), ("game24", "test", 1362),
     ("aqua", "test", 254)],
)  # fmt: skip
def test_shared_datasets_load_completely(data_dir, name, split, count):
    loaded = load_dataset(name, split, data_dir=data_dir)
    assert len(loaded.problems) == count
    assert not loaded.skipped
    assert all(p.gold for p in loaded.problems)


def test_problem_fields_per_dataset(data_dir):
    gsm8k = load_dataset("gsm8k", data_dir=data_dir).problems[0]
    assert gsm8k.id == "gsm8k/test/0" and gsm8k.gold == "18"
    math500 = load_dataset("math500", data_dir=data_dir).problems[0]
    assert math500.metadata["level"] in range(1, 6) and math500.metadata["subject"]
    assert "\\boxed{}" in math500.prompt
    full_math = load_dataset("math", data_dir=data_dir).problems
    assert all(isinstance(p.metadata["level"], int) for p in full_math[:50])
    aqua = load_dataset("aqua", data_dir=data_dir).problems[0]
    assert aqua.gold in "ABCDE" and "A)" in aqua.prompt


def test_game24_uses_puzzles_900_to_999_by_default(data_dir):
    loaded = load_dataset("game24", data_dir=data_dir)
    chosen = select(loaded.problems, spec=loaded.spec)
    assert len(chosen) == 100
    assert chosen[0].id == "game24/900" and chosen[-1].id == "game24/999"
    assert len(chosen[0].metadata["numbers"]) == 4


def test_selection_by_offset_limit_ids_and_seeded_sample(data_dir):
    problems = load_dataset("gsm8k", data_dir=data_dir).problems
    assert [p.id for p in select(problems, offset=10, limit=2)] == ["gsm8k/test/10", "gsm8k/test/11"]
    assert [p.id for p in select(problems, ids=["gsm8k/test/5", "gsm8k/test/1"])] == ["gsm8k/test/5", "gsm8k/test/1"]
    first, again = select(problems, sample=5, seed=3), select(problems, sample=5, seed=3)
    assert first == again and first != select(problems, sample=5, seed=4)
    with pytest.raises(DataError, match="no problems with ids"):
        select(problems, ids=["nope"])


def _write(folder, lines):
    (folder / "gsm8k").mkdir(parents=True, exist_ok=True)
    path = folder / "gsm8k" / "test.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = json.dumps({"question": "1+1?", "answer": "so\n#### 2"})


def test_a_line_that_is_not_json_is_named_by_file_and_line(tmp_path):
    path = _write(tmp_path, [GOOD, "{not json", GOOD])
    with pytest.raises(DataError, match=rf"{path}:2: not valid JSON"):
        load_dataset("gsm8k", data_dir=tmp_path)


def test_a_record_without_its_answer_is_named(tmp_path):
    path = _write(tmp_path, [GOOD, GOOD, json.dumps({"question": "q"})])
    with pytest.raises(DataError, match=rf"{path}:3: record has no `answer` field"):
        load_dataset("gsm8k", data_dir=tmp_path)


def test_skip_bad_skips_and_counts(tmp_path):
    _write(tmp_path, [GOOD, "{not json", json.dumps({"question": "q", "answer": "no marker"}), GOOD])
    loaded = load_dataset("gsm8k", data_dir=tmp_path, skip_bad=True)
    assert len(loaded.problems) == 2
    assert len(loaded.skipped) == 2 and ":3: GSM8K answer has no '####' marker" in loaded.skipped[1]


def test_unknown_dataset_split_and_missing_file_are_clear(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'mmlu'"):
        load_dataset("mmlu", data_dir=tmp_path)
    with pytest.raises(DataError, match="has no split 'dev'"):
        load_dataset("gsm8k", "dev", data_dir=tmp_path)
    with pytest.raises(DataError, match="no gsm8k test file at"):
        load_dataset("gsm8k", data_dir=tmp_path)


def test_a_dataset_without_a_known_hub_copy_asks_for_a_local_folder(monkeypatch):
    monkeypatch.delenv("THOUGHTGRAPH_DATA", raising=False)
    with pytest.raises(DataError, match="no hub source is known for game24"):
        load_dataset("game24")
