"""Benchmark problems: GSM8K, MATH, MATH-500, Game of 24, AQuA, and generated arithmetic (``evals.arithmetic``).

Local files (``--data-dir`` or ``THOUGHTGRAPH_DATA``) are read line by line so that a malformed
record is reported with its file and line; from the hub (when no local folder is given) they come
through HF ``datasets``. Each dataset turns its records into :class:`Problem` objects and says how
a problem is put to a method (``prompt``) and which output constraint suits its answers.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import os
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from thoughtgraph.evals.graders import gsm8k_gold
from thoughtgraph.evals.scoring import (
    GradingInput,
    Score,
    Scorer,
    graded,
    score_choice,
    score_game24,
    score_gsm8k,
    score_math,
)
from thoughtgraph.reasoning.answers import NUMBER_PATTERN, last_boxed

DATA_ENV = "THOUGHTGRAPH_DATA"


class DataError(ValueError):
    """A data file or record is malformed; the message names the file and line."""


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    gold: str
    prompt: str
    """The text handed to the method: the question plus the dataset's answer instructions."""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    files: dict[str, str]
    """split -> file under the data folder."""
    hub: tuple[str, tuple[str | None, ...]] | None
    """(hub path, configs concatenated in order) for HF datasets when no local folder is given;
    None where no hub copy with these fields is known (use a local folder)."""
    build: Callable[[dict[str, Any], int, str], Problem]
    """One record (its index and split) as a Problem; ValueError names what the record lacks."""
    score: Scorer
    """Reads the prediction from the answer (and reasoning) and grades it against the gold. A module-level
    function: the grading process imports it by name."""
    answer_pattern: str | None
    """Regex a constrained final answer must match; None for free-form answers (MATH)."""
    default_range: tuple[int, int] | None = None
    """(start, stop) of the problems used by default (Game of 24: puzzles 900-999)."""
    generation: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({"chain_tokens": 256}))
    """Method options this dataset sets by default where a method has them (a method option given by the user
    wins): the whole-chain budget of lm-evaluation-harness's tasks, 256 new tokens (its gsm8k and minerva_math),
    and their textual stop sequences as ``chain_stop`` (``until``: gsm8k "Question:", minerva_math "Problem:";
    its "</s>" and "<|im_end|>" are end-of-reply tokens, which every backend stops at already)."""

    def __post_init__(self) -> None:
        if "<" in self.score.__qualname__:
            raise ValueError(
                f"dataset {self.name!r}: its scorer {self.score.__qualname__} must be a module-level function "
                "(the grading process imports it by name)"
            )


def _lm_eval_generation(stop: str) -> Mapping[str, Any]:
    return MappingProxyType({"chain_tokens": 256, "chain_stop": (stop,)})


def _gsm8k(record: dict[str, Any], index: int, split: str) -> Problem:
    question = _field(record, "question")
    return Problem(f"gsm8k/{split}/{index}", question, gsm8k_gold(_field(record, "answer")), question)


_MATH_INSTRUCTION = "\n\nPut the final answer in \\boxed{}."


def _math(record: dict[str, Any], index: int, split: str) -> Problem:
    problem = _field(record, "problem")
    gold = record.get("answer") or last_boxed(_field(record, "solution"))
    if not gold:
        raise ValueError("record has no `answer` and its `solution` has no \\boxed{} answer")
    level = record.get("level")
    level = int(str(level).replace("Level ", "")) if str(level).replace("Level ", "").isdigit() else None
    subject = record.get("subject") or record.get("type")
    identifier = record.get("unique_id") or f"math/{split}/{index}"
    return Problem(identifier, problem, gold, problem + _MATH_INSTRUCTION, {"level": level, "subject": subject})


def _arith(record: dict[str, Any], index: int, split: str) -> Problem:
    question = _field(record, "question")
    return Problem(f"arith/{split}/{index}", question, gsm8k_gold(_field(record, "answer")), question)


def _game24(record: dict[str, Any], index: int, split: str) -> Problem:
    puzzle = _field(record, "Puzzles")
    try:
        numbers = [int(n) for n in puzzle.split()]
    except ValueError:
        raise ValueError(f"puzzle {puzzle!r} is not four whole numbers") from None
    if len(numbers) != 4:
        raise ValueError(f"puzzle {puzzle!r} is not four whole numbers")
    prompt = (
        f"Use the numbers {' '.join(map(str, numbers))}, each exactly once, with + - * / and brackets "
        "to make 24. Give the expression as your answer."
    )
    return Problem(f"game24/{index}", puzzle, "24", prompt, {"numbers": numbers})


def _aqua(record: dict[str, Any], index: int, split: str) -> Problem:
    question, options, correct = _field(record, "question"), record.get("options"), _field(record, "correct")
    if not isinstance(options, list) or not options:
        raise ValueError("record has no `options` list")
    prompt = question + "\n" + "\n".join(options) + "\nAnswer with the letter of the correct option."
    return Problem(f"aqua/{split}/{index}", question, correct.strip().upper(), prompt, {"options": options})


MATH_SUBJECTS = (
    "algebra", "counting_and_probability", "geometry", "intermediate_algebra", "number_theory", "prealgebra",
    "precalculus",
)  # fmt: skip

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "gsm8k",
            files={"test": "gsm8k/test.jsonl", "train": "gsm8k/train.jsonl"},
            hub=("openai/gsm8k", ("main",)),
            build=_gsm8k,
            score=score_gsm8k,
            answer_pattern=NUMBER_PATTERN,
            generation=_lm_eval_generation("Question:"),
        ),
        DatasetSpec(
            "math",
            files={"test": "math/test.jsonl", "train": "math/train.jsonl"},
            hub=("EleutherAI/hendrycks_math", MATH_SUBJECTS),
            build=_math,
            score=score_math,
            answer_pattern=None,
            generation=_lm_eval_generation("Problem:"),
        ),
        DatasetSpec(
            "math500",
            files={"test": "math/test500.jsonl"},
            hub=("HuggingFaceH4/MATH-500", (None,)),
            build=_math,
            score=score_math,
            answer_pattern=None,
            generation=_lm_eval_generation("Problem:"),
        ),
        DatasetSpec(
            "game24",
            files={"test": "game24/24.csv"},
            hub=None,
            build=_game24,
            score=score_game24,
            answer_pattern=r"[0-9+\-*/() ]{5,40}",
            default_range=(900, 1000),
        ),
        DatasetSpec(
            "arith",  # generated: python -m thoughtgraph.evals.arithmetic DATA_DIR
            files={"test": "arith/test.jsonl", "train": "arith/train.jsonl"},
            hub=None,
            build=_arith,
            score=score_gsm8k,
            answer_pattern=NUMBER_PATTERN,
        ),
        DatasetSpec(
            "aqua",
            files={"test": "aqua/test.json", "dev": "aqua/dev.json"},
            hub=("deepmind/aqua_rat", ("raw",)),
            build=_aqua,
            score=score_choice,
            answer_pattern="[A-E]",
        ),
    )
}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Make ``spec`` reachable by name from ``load_dataset``, the eval runner and ``thoughtgraph eval``."""
    if spec.name in DATASETS and DATASETS[spec.name] is not spec:
        raise ValueError(f"a dataset named {spec.name!r} is already registered")
    DATASETS[spec.name] = spec
    return spec


def grade(item: GradingInput) -> Score:
    """The Score of one answer by its dataset's scorer. Raises ValueError for a dataset without one."""
    spec = DATASETS.get(item.dataset)
    if spec is not None:
        return graded(item, spec.score)
    if item.scorer is None:
        raise ValueError(f"no scoring rule for dataset {item.dataset!r}")
    module, _, name = item.scorer.partition(":")
    scorer = importlib.import_module(module)
    for part in name.split("."):
        scorer = getattr(scorer, part)
    return graded(item, scorer)


def _field(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"record has no `{name}` field")
    return value


def _decode(path: Path, data: bytes, first_line: int = 1) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = first_line + data[: error.start].count(b"\n")
        raise DataError(f"{path}:{line}: not UTF-8 text (byte {data[error.start]:#04x})") from None


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, record) for each record, or (line, error text) for a malformed line."""
    if path.suffix == ".csv":
        text = _decode(path, path.read_bytes())
        for line, row in enumerate(csv.DictReader(io.StringIO(text, newline="")), start=2):
            yield line, dict(row)
        return
    with path.open("rb") as handle:
        for line, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                yield line, f"not UTF-8 text (byte {raw[error.start]:#04x})"
                continue
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as error:
                yield line, f"not valid JSON ({error.msg})"
                continue
            yield line, record if isinstance(record, dict) else "not a JSON object"


@dataclass
class LoadedDataset:
    spec: DatasetSpec
    split: str
    problems: list[Problem]
    skipped: list[str]
    """'file:line: reason' for every malformed record skipped under ``skip_bad``."""
    source: str


def load_dataset(
    name: str, split: str = "test", *, data_dir: str | Path | None = None, skip_bad: bool = False
) -> LoadedDataset:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    spec = DATASETS[name]
    if split not in spec.files:
        raise DataError(f"dataset {name!r} has no split {split!r}; it has {', '.join(spec.files)}")
    folder = data_dir or os.environ.get(DATA_ENV)
    if folder is None:
        return _from_hub(spec, split)
    path = Path(folder) / spec.files[split]
    if not path.is_file():
        raise DataError(f"no {name} {split} file at {path} (set --data-dir or ${DATA_ENV})")
    problems, skipped = [], []
    for index, (line, record) in enumerate(_records(path)):
        try:
            if isinstance(record, str):
                raise ValueError(record)
            problems.append(spec.build(record, index, split))
        except ValueError as error:
            message = f"{path}:{line}: {error}"
            if not skip_bad:
                raise DataError(message + " (use --skip-bad to skip malformed records)") from None
            skipped.append(message)
    return LoadedDataset(spec, split, problems, skipped, str(path))


def _from_hub(spec: DatasetSpec, split: str) -> LoadedDataset:
    if spec.hub is None:
        raise DataError(f"no hub source is known for {spec.name}; give --data-dir or ${DATA_ENV}")
    import datasets

    path, configs = spec.hub
    try:
        rows = [dict(row) for config in configs for row in datasets.load_dataset(path, config, split=split)]
    except Exception as error:  # offline, no such dataset, no access: all end the same way for the user
        raise DataError(
            f"cannot load {path} from the hub ({type(error).__name__}: {str(error)[:200]}); "
            f"offline? pass --data-dir or set ${DATA_ENV} to a local copy"
        ) from None
    problems = [spec.build(row, index, split) for index, row in enumerate(rows)]
    return LoadedDataset(spec, split, problems, [], f"hub:{path}")


def select(
    problems: list[Problem],
    *,
    spec: DatasetSpec | None = None,
    offset: int = 0,
    limit: int | None = None,
    ids: list[str] | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> list[Problem]:
    """The problems a run uses: by ids, else the dataset's default range, then offset/limit, then a seeded sample."""
    if ids:
        by_id = {p.id: p for p in problems}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise DataError(f"no problems with ids {missing[:5]}")
        return [by_id[i] for i in ids]
    if spec is not None and spec.default_range is not None:
        problems = problems[spec.default_range[0] : spec.default_range[1]]
    if offset < 0 or (limit is not None and limit < 0) or (sample is not None and sample <= 0):
        raise DataError("offset and limit must be >= 0 and sample > 0")
    chosen = problems[offset : offset + limit if limit is not None else None]
    if sample is not None:
        chosen = random.Random(seed).sample(chosen, min(sample, len(chosen)))
    return chosen
