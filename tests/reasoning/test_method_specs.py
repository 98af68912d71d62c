"""A method is one MethodSpec: registering it makes it reachable from solve, serve's request parser and the eval
runner, with its options checked and its server settings kept from network clients; a spec that does not
agree with its own config is refused when it is declared."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from thoughtgraph.backends.scripted import ScriptedBackend
from thoughtgraph.evals.datasets import DATASETS
from thoughtgraph.evals.runner import EvalConfig, _method_config
from thoughtgraph.reasoning import METHODS, MethodSpec, make_config, register_method, solve
from thoughtgraph.reasoning.context import RunContext
from thoughtgraph.reasoning.cot import solver
from thoughtgraph.reasoning.options import server_setting, sized
from thoughtgraph.reasoning.outcome import Outcome
from thoughtgraph.server.protocol import RequestError, parse_request


@dataclass(frozen=True)
class FirstLineConfig:
    chain_tokens: int = sized(64, "tokens")
    keep_chars: int = sized(40, "count")
    answer_pattern: str | None = server_setting(None)


async def first_line(context: RunContext, config: FirstLineConfig) -> Outcome:
    """A method of one chain whose answer is the chain's first line, cut to ``keep_chars``."""
    chain = (await solver(context, config.chain_tokens).run(question=context.question, seed=context.seed)).texts[0]
    return Outcome(chain.splitlines()[0][: config.keep_chars], chain)


FIRST_LINE = MethodSpec(
    "first_line",
    "First line",
    FirstLineConfig,
    first_line,
    tiny={"chain_tokens": 8},
    presets={"short": {"keep_chars": 3}},
)


@pytest.fixture
def registered():
    register_method(FIRST_LINE)
    yield FIRST_LINE
    del METHODS["first_line"]


def test_a_registered_method_is_solved_through_the_front_door(registered):
    backend = ScriptedBackend([], default="forty-two\nso the answer is 42")
    solution = solve("What is 6 * 7?", "first_line", backend, keep_chars=5)
    assert solution.method == "first_line"
    assert solution.answer == "forty"
    assert solution.usage["calls"] == 1


def test_presets_then_options_and_unknown_names_are_named(registered):
    assert make_config("first_line", preset="short").keep_chars == 3
    assert make_config("first_line", preset="short", keep_chars=7).keep_chars == 7
    with pytest.raises(ValueError, match="has no preset 'long'; it has \\['short'\\]"):
        make_config("first_line", preset="long")
    with pytest.raises(ValueError, match="has no option\\(s\\) \\['keep'\\]"):
        make_config("first_line", keep=1)
    with pytest.raises(ValueError, match="needs int, got 'x'"):
        make_config("first_line", keep_chars="x")


def test_serve_reads_who_may_set_what_from_the_spec(registered):
    body = {"model": "first_line", "messages": [{"role": "user", "content": "2+2?"}], "keep_chars": 2}
    assert parse_request(body).config.keep_chars == 2
    with pytest.raises(RequestError, match="`answer_pattern` is server configuration"):
        parse_request({**body, "answer_pattern": "[0-9]+"})
    assert registered.client_options() == ["chain_tokens", "keep_chars"]
    assert registered.server_settings() == ["answer_pattern"]


def test_the_eval_runner_hands_the_datasets_answer_pattern_to_a_method_that_takes_one(registered):
    numeric = dataclasses.replace(DATASETS["gsm8k"], answer_pattern="[0-9]+")
    config = _method_config(EvalConfig(dataset="gsm8k", method="first_line"), numeric)
    assert config.answer_pattern == "[0-9]+"
    chosen = _method_config(EvalConfig(dataset="gsm8k", method="cot", method_options={"chain_tokens": 9}), numeric)
    assert chosen.chain_tokens == 9 and chosen.answer_pattern == "[0-9]+"  # the user's option beats the dataset's


def test_a_second_method_of_the_same_name_is_refused(registered):
    twin = MethodSpec("first_line", "Twin", FirstLineConfig, first_line)
    with pytest.raises(ValueError, match="already registered"):
        register_method(twin)
    assert register_method(FIRST_LINE) is FIRST_LINE  # registering the same spec again is harmless


def test_a_spec_that_disagrees_with_its_config_is_refused_where_it_is_declared():
    with pytest.raises(ValueError, match="tiny sets unknown option\\(s\\) \\['samples'\\]"):
        MethodSpec("bad", "Bad", FirstLineConfig, first_line, tiny={"samples": 2})
    with pytest.raises(ValueError, match="preset 'p' sets unknown option\\(s\\) \\['x'\\]"):
        MethodSpec("bad", "Bad", FirstLineConfig, first_line, presets={"p": {"x": 1}})
    with pytest.raises(TypeError, match="is not a dataclass"):
        MethodSpec("bad", "Bad", dict, first_line)
    with pytest.raises(ValueError, match="lower-case identifier"):
        MethodSpec("Bad-Name", "Bad", FirstLineConfig, first_line)


def test_unknown_methods_are_named_with_the_ones_there_are():
    with pytest.raises(ValueError, match="unknown method 'nope'; available: cot, sc, bon, tot, bot, tr, gg, rsim"):
        make_config("nope")


@pytest.mark.parametrize("method", list(METHODS))
def test_every_built_in_tiny_preset_is_smaller_than_the_defaults(method):
    spec = METHODS[method]
    tiny, default = spec.make_config(**spec.tiny), spec.make_config()
    assert spec.tiny, f"{method} has no tiny preset"
    for name in spec.tiny:
        bounded, unbounded = getattr(tiny, name), getattr(default, name)
        assert unbounded is None or bounded < unbounded, f"{method}.{name} is not smaller in the tiny preset"
