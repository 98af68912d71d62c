"""The `thoughtgraph` command as a user runs it."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "thoughtgraph", *args], capture_output=True, text=True, timeout=240)


def test_solve_on_the_embedded_model_prints_answer_reasoning_and_cost():
    result = run_cli(
        "solve", "Tom has 3 apples and buys 4 more. How many apples does he have?", "--option", "chain_tokens=96"
    )
    assert result.returncode == 0, result.stderr
    assert any(line.startswith("Answer: ") for line in result.stdout.splitlines())
    assert "thought 1 (after 0)" in result.stdout  # shown live, before the answer
    assert "Reasoning (cot, llamacpp:smollm2)" in result.stdout
    assert "Cost: " in result.stdout and "calls" in result.stdout


def test_solve_json_output_and_cache_make_reruns_free(tmp_path):
    cache = str(tmp_path / "cache.sqlite")
    args = ("solve", "What is 5 plus 6?", "--option", "chain_tokens=48", "--cache", cache, "--json")
    first = json.loads(run_cli(*args).stdout)
    second = json.loads(run_cli(*args).stdout)
    assert second["answer"] == first["answer"] and second["reasoning"] == first["reasoning"]
    assert second["usage"]["cache_hits"] == second["usage"]["calls"] >= 1
    assert first["usage"]["cache_hits"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("solve", "hi", "--backend", "ollama:x"), "unknown backend 'ollama'"),
        (("solve", "hi", "--backend", "llamacpp:/nope.gguf"), "no GGUF model file"),
        (("solve", "", "--backend", "llamacpp:smollm2"), "problem is empty"),
        (("solve", "hi", "--method", "magic"), "unknown method 'magic'"),
    ],
)
def test_bad_input_gives_a_clear_error_and_exit_code(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_solve_with_a_method_streams_thoughts_writes_the_trace_and_honours_the_budget(tmp_path):
    trace = tmp_path / "trace.html"
    result = run_cli(
        "solve", "What is 6 times 7?", "--method", "tr", "--option", "step_tokens=32", "--option", "max_steps=4",
        "--max-calls", "5", "--html", str(trace),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "thought 1 (after 0)" in result.stdout
    assert "Cost: " in result.stdout
    calls = int(result.stdout.split("Cost: ")[1].split(" calls")[0])
    assert calls <= 5
    assert trace.read_text().startswith("<!DOCTYPE html>")


def test_solve_states_the_worst_case_calls_and_follows_calls_spent(tmp_path):
    script = tmp_path / "script.yaml"
    script.write_text(
        'rules:\n  - match: "You grade"\n    responses: ["0.5"]\n'
        '  - match: "Write step"\n    responses: ["Go on.", "The answer is 4."]\n    cycle: true\n'
    )
    result = run_cli(
        "solve", "What is 2 + 2?", "--method", "tot", "--backend", f"scripted:{script}",
        "--option", "proposals=2", "--option", "beam=2", "--option", "max_depth=3", "--max-calls", "5",
        "--progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # 1 + 2 + 2 * (2 + 2 * 2) = 15 calls at most for this config, bounded further by the budget
    assert "tot: at most 15 calls for this config; budget 5 calls" in result.stderr
    assert "calls" in result.stderr and "/5" in result.stderr  # the bar of calls spent against the budget
    # 5 calls less a reserve of 2 for a fallback chain leave 3: one level of 2 proposals and their 2
    # valuations is 1 + 2 calls, so the beam shrinks from 2 to 1
    assert "budget: max_calls=5: tot shrunk to fit (beam 2->1)" in result.stdout


def test_an_empty_result_says_why(tmp_path):
    script = tmp_path / "script.yaml"
    script.write_text('rules:\n  - match: "answer"\n    responses: ["I am not sure."]\n    cycle: true\n')
    mute = run_cli("solve", "What is 2 + 2?", "--backend", f"scripted:{script}", "--option", "answer_pattern=null")
    assert "Answer: (none found: no chain stated an answer that could be read (1 unreadable reply))" in mute.stdout
    assert "--html FILE writes the thought graph" in mute.stdout
    tiny = run_cli("solve", "What is 2 + 2?", "--backend", f"scripted:{script}", "--max-tokens", "10")
    assert "Answer: (none found: max_tokens=10: too small for one chain of thought, which needs 1 call" in tiny.stdout
