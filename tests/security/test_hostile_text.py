"""Model text is hostile by assumption: 1 MB answers built to make scanning superlinear, expressions built to
slip a huge power past the grader's guard, and terminal escape sequences in what ``thoughtgraph solve``
prints."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.security.serving import THOUGHTGRAPH
from thoughtgraph.evals.graders import extract_choice, extract_game24, extract_gsm8k, math_equal
from thoughtgraph.evals.mathparse import MAX_VALUE_DIGITS, Ungradable, parse, to_sympy, value_digits
from thoughtgraph.reasoning.answers import clean_answer, extract_answer, last_boxed, stated_answer
from thoughtgraph.terminal import for_terminal

pytestmark = pytest.mark.integration  # the CLI and a real server as subprocesses

MEGABYTE = 1 << 20
HOSTILE = {
    "open boxes": "\\boxed{",
    "nested boxes": "\\boxed{\\boxed{1}",
    "open braces": "{",
    "close braces": "}",
    "answer is": "the answer is ",
    "answer is unclear": "The answer is unclear ",
    "answer colon lines": "\nAnswer: ",
    "hashes": "#### ",
    "thousands": "1,",
    "equations": "1 = ",
    "brackets": "The answer is (",
    "units": "5 dollars ",
}
SCANNERS = {
    "stated_answer": stated_answer,
    "extract_answer": extract_answer,
    "last_boxed": last_boxed,
    "extract_gsm8k": extract_gsm8k,
    "extract_game24": extract_game24,
    "extract_choice": extract_choice,
}


@pytest.mark.parametrize("pattern", HOSTILE, ids=list(HOSTILE))
def test_every_answer_scanner_is_linear_on_1mb_of_hostile_text(pattern):
    text = HOSTILE[pattern] * (MEGABYTE // len(HOSTILE[pattern]))
    for name, scan in SCANNERS.items():
        started = time.perf_counter()
        scan(text)
        seconds = time.perf_counter() - started
        assert seconds < 0.5, f"{name} took {seconds:.2f} s on 1 MB of {pattern!r}"
    started = time.perf_counter()
    clean_answer(text[:20_000])
    assert time.perf_counter() - started < 0.5


def test_the_answer_after_a_flood_of_markers_is_still_found():
    assert stated_answer("\\boxed{" * 20_000 + "so \\boxed{7}") == "7"
    assert stated_answer("The answer is unclear. " * 5_000 + "The answer is 12.") == "12"
    assert extract_answer("{" * 30_000 + " then 5 apples") == "5"
    assert stated_answer("\\boxed{\\frac{1}{2}}" + "}" * 100_000) is None  # only the last 20,000 chars are read


@pytest.mark.parametrize(
    "expression",
    [
        "((9^{99})^{99})^{99}",  # each power is small; the tower is 9^970299
        "9^{9999} \\cdot 9^{9999} \\cdot 9^{9999}",  # a product of big powers
        "\\sqrt{(99^{9000})^{2}}",  # 36,000 digits under the root
        "(99^{999})!",
        "(10^{60})^{400}",
        "(2x)^{9999} \\cdot (3x)^{9999} \\cdot (5x)^{9999}",
    ],
)
def test_nested_and_multiplied_powers_are_refused_before_anything_is_built(expression):
    started = time.perf_counter()
    with pytest.raises(Ungradable):
        to_sympy(parse(expression))
    with pytest.raises(Ungradable):  # before math-verify or sympy builds anything
        math_equal(expression, "1")
    assert time.perf_counter() - started < 2.0


def test_the_size_bound_is_worked_out_by_hand_and_real_answers_pass():
    # 12^3: 2 digits * 3 = 6; 1/2 + 3: max(1+1, 1) + 1 = 3; 5!: 5 * log10(5) < 5 digits, at least 5
    assert value_digits(parse("12^3")) == 6
    assert value_digits(parse("\\frac{1}{2} + 3")) == 3
    assert value_digits(parse("2^{10}")) == 10
    assert MAX_VALUE_DIGITS >= value_digits(parse("(3^{100})^{2}")) == 200
    assert str(to_sympy(parse("(3^{2})^{2}"))) == "81"
    assert math_equal("\\frac{1}{2}", "0.5") and math_equal("2^{10}", "1024")


def test_the_terminal_sees_escape_sequences_shown_not_obeyed():
    hostile = "ok\x1b]0;owned\x07\x1b[2J\x1b]52;c;ZWNobyBvd25lZA==\x07\rline\u202egnp.exe\x9b31m\tend\n"
    shown = for_terminal(hostile)
    assert not any(c in shown for c in "\x1b\x07\r\u202e\x9b")
    assert "\\x1b]0;owned\\x07" in shown and "\\u202e" in shown and "\\x9b" in shown and "\tend\n" in shown


def test_solve_prints_model_escape_sequences_visibly_and_keeps_them_in_json(tmp_path):
    script = tmp_path / "script.yaml"
    reply = "Think\x1b[2J\x1b]0;owned\x07 hard.\nThe answer is 42.\x1b[8m"
    script.write_text(json.dumps({"rules": [], "default": reply}))
    question = "What is 6 times 7? \x1b[31m"
    plain = subprocess.run([THOUGHTGRAPH, "solve", question, "--backend", f"scripted:{script}"],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    assert "\x1b" not in plain.stdout and "\x07" not in plain.stdout
    assert "\\x1b[2J" in plain.stdout and "Answer: 42" in plain.stdout
    as_json = subprocess.run([THOUGHTGRAPH, "solve", question, "--backend", f"scripted:{script}", "--json"],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "\x1b[2J" in json.loads(as_json.stdout)["reasoning"]  # JSON keeps the text; json escapes it itself
