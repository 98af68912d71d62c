"""Model output is data, never code: hostile answers through every grader, the methods' extraction and a
whole eval run. Each payload that *would* run code creates a canary file; none may exist afterwards."""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thoughtgraph.backends.scripted import ScriptedBackend, ScriptRule
from thoughtgraph.evals.datasets import DATASETS, grade
from thoughtgraph.evals.mathparse import OutsideGrammar, Ungradable, normalize, tokenize
from thoughtgraph.evals.runner import EvalConfig, read_samples, run_eval
from thoughtgraph.evals.sandbox import GradingSandbox
from thoughtgraph.evals.scoring import GradingInput
from thoughtgraph.reasoning.answers import extract_answer, stated_answer

DATASETS_GRADED = list(DATASETS)

SANDBOX_SECONDS = 3.0
GOLD = {"gsm8k": "72", "arith": "72", "math": "\\frac{3}{4}", "math500": "\\frac{3}{4}", "game24": "", "aqua": "C"}


def fullwidth(text: str) -> str:
    """The same text in fullwidth forms (U+FF01..U+FF5E), which NFKC maps back to ASCII."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def smuggled(canary: str) -> str:
    """The attack that reached ``os.system`` through sympify: identifiers in fullwidth letters (NFKC turns
    them into ASCII identifiers), strings spelt as byte values, no ASCII letters or spaces for a filter to see."""

    def spelt(text: str) -> str:
        return f"{fullwidth('bytes')}(({','.join(str(b) for b in text.encode())},)).{fullwidth('decode')}()"

    return f"{fullwidth('__import__')}({spelt('os')}).{fullwidth('system')}({spelt(f'touch {canary}')})"


def code_payloads(canary: str) -> list[str]:
    shell = f"touch {canary}"
    ascii_payloads = [
        f"__import__('os').system('{shell}')",
        f"().__class__.__bases__[0].__subclasses__()[0].__init__.__globals__['os'].system('{shell}')",
        f"(lambda: __import__('os').system('{shell}'))()",
        f"import os; os.system('{shell}')",
        f"exec(\"import os; os.system('{shell}')\")",
        f'eval(\'__import__("os").system("{shell}")\')',
        "{0.__class__.__mro__[1].__subclasses__}",
        f"'%s' % __import__('os').system('{shell}')",
        f"Symbol('x').__class__.__init__.__globals__['os'].system('{shell}')",
        f"\\boxed{{__import__('os').system('{shell}')}}",
    ]
    fullwidth_payloads = [fullwidth(p) for p in ascii_payloads]
    return [smuggled(canary), f"\\boxed{{{smuggled(canary)}}}", *ascii_payloads, *fullwidth_payloads]


EXPENSIVE = [
    "9^9^9^9",
    "\\boxed{9^9^9^9}",
    "10^{10^{10}}",
    "(10^{9999})^{9999}",
    "99999999!",
    "(" * 10_000 + "1" + ")" * 10_000,
    "\\frac{" * 5_000 + "1" + "}{2}" * 5_000,
    "{" * 10_000,
    "5/0",
    "\\boxed{5/0}",
    "\\frac{1}{0}",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e309",
    "",
    "9" * 1_000_000,
    "The answer is " + " " * 100_000 + "\n" * 100_000,
    "answer is " * 50_000,
    "+".join(["1"] * 1_500) + " = 24",
    "(" * 1_000 + "6*4" + ")" * 1_000 + " = 24",
]


def hostile_answers(canary: str) -> list[str]:
    return code_payloads(canary) + EXPENSIVE


@pytest.fixture(scope="module")
def sandbox():
    with GradingSandbox(timeout_seconds=SANDBOX_SECONDS) as box:
        yield box


def test_fullwidth_payloads_normalise_to_the_ascii_attack():
    # the reason for NFKC *before* the whitelist: Python would read these letters as ASCII identifiers
    assert normalize(fullwidth("__import__('os')")) == "__import__('os')"


@pytest.mark.parametrize("dataset", DATASETS_GRADED)
def test_no_grader_runs_code_or_stalls_on_hostile_answers(dataset, sandbox, tmp_path):
    canary = tmp_path / "canary"
    for answer in hostile_answers(str(canary)):
        item = GradingInput(dataset, answer, f"Some work.\nThe answer is {answer}", GOLD[dataset], [1, 2, 3, 4])
        started = time.monotonic()
        score = sandbox.grade(item)
        elapsed = time.monotonic() - started
        assert elapsed < SANDBOX_SECONDS + 2, (dataset, answer[:60], elapsed)
        assert score.correct is False, (dataset, answer[:60])
        assert not (score.ungradable or "").startswith("grading failed"), (dataset, answer[:60], score.ungradable)
        assert not canary.exists(), (dataset, answer[:60])


@pytest.mark.parametrize("dataset", DATASETS_GRADED)
def test_hostile_answers_are_bounded_without_the_sandbox_too(dataset, tmp_path):
    """The limits, not only the sandbox, keep these cheap: in-process grading of each takes under 3 s."""
    canary = tmp_path / "canary"
    for answer in hostile_answers(str(canary)):
        started = time.monotonic()
        score = grade(GradingInput(dataset, answer, f"The answer is {answer}", GOLD[dataset], [1, 2, 3, 4]))
        assert time.monotonic() - started < 3.0, (dataset, answer[:60])
        assert score.correct is False
    assert not canary.exists()


@pytest.fixture
def evaluators_watched(monkeypatch):
    """Record every string handed to sympify / parse_expr (the entry points) and to eval / exec while grading."""
    import builtins

    import math_verify.parser
    import sympy
    import sympy.parsing.sympy_parser

    seen: dict[str, list[str]] = {"parsers": [], "eval": []}

    def watch(function, kind):
        def watched(source, *args, **kwargs):
            if isinstance(source, str):
                seen[kind].append(source)
            return function(source, *args, **kwargs)

        return watched

    for warm_up in ("\\frac{1}{2}", "2\\text{ km}", "e^{2}", "(1,2]", "90^\\circ", "x^2+2x+1"):
        grade(GradingInput("math", warm_up, "", "(x+1)^2"))  # lazy imports happen before watching
    monkeypatch.setattr(builtins, "eval", watch(builtins.eval, "eval"))
    monkeypatch.setattr(builtins, "exec", watch(builtins.exec, "eval"))
    monkeypatch.setattr(sympy, "sympify", watch(sympy.sympify, "parsers"))
    parse_expr = sympy.parsing.sympy_parser.parse_expr
    monkeypatch.setattr(sympy.parsing.sympy_parser, "parse_expr", watch(parse_expr, "parsers"))
    monkeypatch.setattr(math_verify.parser, "parse_expr", watch(math_verify.parser.parse_expr, "parsers"))
    return seen


@pytest.mark.parametrize("dataset", DATASETS_GRADED)
def test_no_grader_hands_model_text_to_an_evaluator(dataset, evaluators_watched, tmp_path):
    """Only numeral tokens that math-verify's LaTeX lexer produced reach sympy's parser (``sympy.Number("3")``
    inside latex2sympy); eval/exec see sympy's own generated code, never a trace of the answer."""
    answers = [*code_payloads(str(tmp_path / "canary")), "3/4", "\\frac{3}{4}", "0.75", "2^{10}", "(1+2)*4"]
    for answer in answers:
        grade(GradingInput(dataset, answer, f"The answer is {answer}", GOLD[dataset], [1, 2, 3, 4]))
    assert all(re.fullmatch(r"-?\d+(?:\.\d+)?", source) for source in evaluators_watched["parsers"])
    sympy_preamble = "from sympy import *"  # parse_expr's own namespace set-up
    traces = ("import", "system", "__", "class", "lambda", "bytes", "touch", "\uff3f")
    code = [c for c in evaluators_watched["eval"] if c != sympy_preamble]
    assert not [c for c in code if any(trace in c for trace in traces)]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("9^9^9^9", "power tower"),
        ("\\boxed{10^{10^{10}}}", "power tower"),
        ("(10^{9999})^{9999}", "exponent above"),
        ("99999999!", "factorial"),
        ("(" * 10_000 + "1" + ")" * 10_000, "characters"),
        ("(" * 30 + "1" + ")" * 30, "nested deeper"),
        ("9" * 500, "digits"),
        ("9" * 1_000_000, "characters"),
    ],
)
def test_answers_beyond_the_limits_are_recorded_as_ungradable_with_the_reason(answer, reason):
    score = grade(GradingInput("math", answer, "", "1"))
    assert score.correct is False and reason in score.ungradable


def test_a_grading_step_that_runs_past_the_time_limit_is_ungradable_and_the_sandbox_recovers(sandbox):
    # inside every limit, but expanding (1+x)^9999 symbolically takes far longer than the time limit
    started = time.monotonic()
    slow = sandbox.grade(GradingInput("math", "(1+x)^{9999}", "", "(x+1)^2"))
    assert time.monotonic() - started < SANDBOX_SECONDS + 2
    assert slow.correct is False and "longer than" in slow.ungradable
    assert sandbox.grade(GradingInput("math", "0.75", "", "\\frac{3}{4}")).correct is True  # a fresh child


@pytest.mark.parametrize("extract", [extract_answer, stated_answer])
def test_the_methods_extraction_is_bounded_and_never_evaluates(extract, tmp_path):
    canary = tmp_path / "canary"
    for answer in hostile_answers(str(canary)):
        for text in (answer, f"Step 1.\nThe answer is {answer}", f"#### {answer}", f"\\boxed{{{answer}}}"):
            started = time.monotonic()
            value = extract(text)
            assert time.monotonic() - started < 1.0, (extract.__name__, text[:60])
            assert value is None or isinstance(value, str)
    assert not canary.exists()


def test_an_eval_run_records_every_hostile_answer_and_runs_nothing(tmp_path, sandbox):
    canary = tmp_path / "canary"
    answers = hostile_answers(str(canary))[:-4]  # the 1 MB-scale ones are covered above; keep the log small
    data = tmp_path / "data" / "math"
    data.mkdir(parents=True)
    rows = [
        {"problem": f"Problem {i}: what is 3/4?", "solution": "So \\boxed{\\frac{3}{4}}.", "type": "Algebra",
         "level": "Level 1", "unique_id": f"p{i}"}
        for i in range(len(answers))
    ]  # fmt: skip
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    backend = ScriptedBackend(
        [ScriptRule(f"Problem {i}:", [f"Work.\nThe answer is: {a}"]) for i, a in enumerate(answers)]
    )
    config = EvalConfig("math", data_dir=str(tmp_path / "data"), out=str(tmp_path / "runs"), run_name="r")
    results = asyncio.run(run_eval(config, backend=backend, progress=False, sandbox=sandbox))
    samples = read_samples(tmp_path / "runs" / "r" / "samples.jsonl")
    assert len(samples) == len(answers) and all(s["status"] == "ok" for s in samples)
    assert results["counts"]["solved"] == 0 and results["counts"]["failed"] == 0
    assert results["ungradable"] == sum(1 for s in samples if s["ungradable"]) >= 6
    assert not canary.exists()


def test_gsm8k_division_by_zero_answer_is_recorded_and_the_run_finishes(tmp_path, sandbox):
    data = tmp_path / "data" / "gsm8k"
    data.mkdir(parents=True)
    (data / "test.jsonl").write_text(
        json.dumps({"question": "What is 1 + 1?", "answer": "#### 2"})
        + "\n"
        + json.dumps({"question": "What is 2 + 2?", "answer": "#### 4"})
        + "\n"
    )
    backend = ScriptedBackend([ScriptRule("1 \\+ 1", ["So \\boxed{5/0}"]), ScriptRule("2 \\+ 2", ["The answer is 4."])])
    config = EvalConfig("gsm8k", data_dir=str(tmp_path / "data"), out=str(tmp_path / "runs"), run_name="r")
    results = asyncio.run(run_eval(config, backend=backend, progress=False, sandbox=sandbox))
    assert results["n_samples"] == 2 and results["counts"] == {"solved": 1, "wrong": 1, "failed": 0}


MATH_ALPHABET = st.sampled_from(
    [*"0123456789+-*/^_()[]{}!.,=x ", "\\frac", "\\sqrt", "\\pi", "\\boxed{", "\\left(", "9^9", "\\cdot"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answer=st.one_of(st.text(max_size=300), st.lists(MATH_ALPHABET, max_size=60).map("".join)))
def test_property_any_unicode_answer_is_graded_or_ungradable_within_the_bound(answer, sandbox):
    for dataset in DATASETS_GRADED:
        started = time.monotonic()
        score = sandbox.grade(GradingInput(dataset, answer, answer, GOLD[dataset] or "1", [1, 2, 3, 4]))
        assert time.monotonic() - started < SANDBOX_SECONDS + 2
        assert isinstance(score.correct, bool)
        assert not (score.ungradable or "").startswith(("grading failed", "the grading process died"))


@settings(max_examples=300, deadline=None)
@given(answer=st.text(max_size=200))
def test_property_extraction_and_tokenizer_never_raise_unexpectedly(answer):
    for extract in (extract_answer, stated_answer):
        value = extract(answer)
        assert value is None or isinstance(value, str)
    try:
        tokens = tokenize(normalize(answer))
    except (OutsideGrammar, Ungradable):  # the two named outcomes besides a token list
        return
    assert all(token.kind != "space" for token in tokens)
