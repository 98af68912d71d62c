import json
import math
from pathlib import Path

import pytest

from thoughtgraph.backends import BackendConfigError, Constraint, Request, create_backend
from thoughtgraph.backends.scripted import ScriptedBackend, ScriptError, ScriptRule, scripted_tokens

SCRIPT = Path(__file__).parents[1] / "scripts" / "arithmetic.yaml"


async def test_scripted_backend_from_spec_answers_by_rule_with_given_logprobs():
    backend = create_backend(f"scripted:{SCRIPT}")
    assert isinstance(backend, ScriptedBackend)
    result = await backend.generate_one(Request.chat(("user", "What is 2 + 3?"), logprobs=True))
    choice = result.choices[0]
    assert choice.text == "2 plus 3 is 5. The answer is 5."
    assert choice.logprobs == [-0.1, -0.2, -0.3, -0.4, -0.5, -0.6, -0.7, -0.8, -0.9]
    assert choice.tokens == scripted_tokens(choice.text)
    assert result.usage.completion_tokens == 9
    assert result.usage.prompt_tokens == len(scripted_tokens("What is 2 + 3?"))


async def test_unmatched_request_gets_the_default_and_unscripted_logprobs_are_uniform():
    backend = create_backend(f"scripted:{SCRIPT}")
    result = await backend.generate_one(Request(prompt="unrelated", logprobs=True))
    assert result.text == "I do not know."
    assert result.choices[0].logprobs == pytest.approx([math.log(0.9)] * 4)


async def test_responses_are_handed_out_in_order_and_the_last_repeats():
    backend = ScriptedBackend([ScriptRule("step", ["a", "b"])])
    result = await backend.generate_one(Request(prompt="step", n=3))
    assert [c.text for c in result.choices] == ["a", "b", "b"]
    cycling = ScriptedBackend([ScriptRule("step", ["a", "b"], cycle=True)])
    result = await cycling.generate_one(Request(prompt="step", n=3))
    assert [c.text for c in result.choices] == ["a", "b", "a"]


async def test_stop_strings_and_max_tokens_cut_the_scripted_text():
    backend = ScriptedBackend([ScriptRule("go", ["one two\n\nthree four"])])
    stopped = await backend.generate_one(Request(prompt="go", stop=("\n\n",)))
    assert stopped.text == "one two"
    assert stopped.choices[0].finish_reason == "stop"
    capped = await backend.generate_one(Request(prompt="go", max_tokens=3))
    assert capped.choices[0].finish_reason == "length"
    assert capped.choices[0].completion_tokens == 3


async def test_no_rule_and_no_default_is_a_clear_error():
    backend = ScriptedBackend([ScriptRule("only this", ["x"])])
    with pytest.raises(ScriptError, match="no rule matching"):
        await backend.generate_one(Request(prompt="something else"))


async def test_a_scripted_answer_that_breaks_the_constraint_is_reported():
    backend = ScriptedBackend([ScriptRule("json", ["not json"]), ScriptRule("num", ["12"])])
    with pytest.raises(ScriptError, match="breaks the request's json_schema"):
        await backend.generate_one(Request(prompt="json", constraint=Constraint.schema({"type": "object"})))
    ok = await backend.generate_one(Request(prompt="num", constraint=Constraint.regex(r"\d+")))
    assert ok.text == "12"


def test_script_files_with_errors_are_named(tmp_path):
    with pytest.raises(BackendConfigError, match="no script file"):
        create_backend(f"scripted:{tmp_path / 'missing.yaml'}")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [{match: 'x', responses: [{text: 'a b', logprobs: [-1]}]}]")
    with pytest.raises(BackendConfigError, match="2 tokens but 1 logprobs"):
        create_backend(f"scripted:{bad}")
    bad.write_text(json.dumps({"rules": [{"match": "(", "responses": ["a"]}]}))
    with pytest.raises(BackendConfigError, match="is not a regex"):
        create_backend(f"scripted:{bad}")


async def test_the_double_records_every_request():
    backend = ScriptedBackend(default="ok")
    await backend.generate([Request(prompt="a"), Request(prompt="b")])
    assert [r.prompt for r in backend.calls] == ["a", "b"]
