"""Every method config refuses bad values with a message naming the field, and accepts the boundary."""

from __future__ import annotations

import dataclasses
import re
import typing

import pytest

from thoughtgraph.reasoning.api import make_config
from thoughtgraph.reasoning.methods import METHODS
from thoughtgraph.reasoning.options import OptionError

RSIM_NAMES = [
    "decompose",
    "deep-think",
    "compute",
    "continue",
    "verify",
    "self-reflect",
    "backtrack",
    "summarise",
    "conclude",
]  # the shipped strategies file, in its order
INVALID = [
    ("cot", {"chain_tokens": 0}, "CoTConfig: chain_tokens and answer_tokens must be positive"),
    ("cot", {"answer_tokens": 0}, "CoTConfig: chain_tokens and answer_tokens must be positive"),
    ("cot", {"temperature": -0.1}, "CoTConfig: temperature must be in [0, 5], got -0.1"),
    ("cot", {"temperature": 5.1}, "CoTConfig: temperature must be in [0, 5], got 5.1"),
    ("sc", {"samples": 0}, "samples and chain_tokens must be >= 1"),
    ("sc", {"chain_tokens": 0}, "samples and chain_tokens must be >= 1"),
    ("bon", {"samples": 0}, "samples and chain_tokens must be >= 1"),
    *[("tot", {name: 0}, f"ToTConfig.{name} must be >= 1, got 0")
      for name in ("proposals", "beam", "max_depth", "step_tokens")],
    ("tot", {"value_mode": "vote"}, "ToTConfig.value_mode must be score or words, got 'vote'"),
    *[("bot", {name: 0}, f"BoTConfig.{name} must be >= 1, got 0")
      for name in ("iterations", "trees", "branching", "max_depth", "max_sinks", "step_tokens")],
    ("bot", {"max_expansions": 0}, "BoTConfig.max_expansions must be >= 1 or None, got 0"),
    ("bot", {"distinct_retries": -1}, "BoTConfig.distinct_retries must be >= 0, got -1"),
    ("bot", {"aggregation": "mean"}, "BoTConfig.aggregation must be greedy or best_first, got 'mean'"),
    ("bot", {"policies": ()}, "BoTConfig.policies must be drawn from dfs, bfs, leaf_best, got ()"),
    ("bot", {"policies": ("dfs", "mcts")},
     "BoTConfig.policies must be drawn from dfs, bfs, leaf_best, got ('dfs', 'mcts')"),
    *[("tr", {name: 0}, f"ThoughtRollbackConfig.{name} must be >= 1, got 0")
      for name in ("step_tokens", "max_depth", "max_solutions", "max_sinks", "max_steps")],
    *[("tr", {name: -1}, f"ThoughtRollbackConfig.{name} must be >= 0, got -1")
      for name in ("max_outgoing", "max_incoming", "max_into_target_from_chain", "max_chain_rollbacks")],
    ("tr", {"vote": "mean"}, "ThoughtRollbackConfig.vote must be majority or weighted, got 'mean'"),
    ("gg", {"paths": 6, "candidates": 4}, "GGConfig: paths (6) must be a positive multiple of candidates (4)"),
    ("gg", {"paths": 0}, "GGConfig: paths (0) must be a positive multiple of candidates (4)"),
    ("gg", {"paths": 4, "candidates": 0}, "GGConfig: paths (4) must be a positive multiple of candidates (0)"),
    *[("gg", {name: 0}, f"GGConfig.{name} must be >= 1, got 0")
      for name in ("max_steps", "step_tokens", "early_iterations", "answer_tokens")],
    ("gg", {"degeneration_every": 0}, "GGConfig.degeneration_every must be >= 1 or None, got 0"),
    ("gg", {"degeneration_after": -1}, "GGConfig.degeneration_after must be >= 0 or None, got -1"),
    ("tot", {"value_samples": 0}, "ToTConfig.value_samples must be >= 1, got 0"),
    ("gg", {"min_step_tokens": -1}, "GGConfig.min_step_tokens must be in [0, step_tokens], got -1"),
    ("gg", {"min_step_tokens": 257}, "GGConfig.min_step_tokens must be in [0, step_tokens], got 257"),
    ("gg", {"vote": "mean"}, "GGConfig.vote must be confidence, majority or top1, got 'mean'"),
    *[("rsim", {name: 0}, "RSIMConfig: max_steps, step_tokens and answer_tokens must be positive")
      for name in ("max_steps", "step_tokens", "answer_tokens")],
    ("rsim", {"start_strategy": "guess"}, f"RSIMConfig: start_strategy 'guess' is not a strategy ({RSIM_NAMES})"),
    ("rsim", {"fallback_strategy": "guess"},
     f"RSIMConfig: fallback_strategy 'guess' is not a strategy ({RSIM_NAMES})"),
    ("rsim", {"conclude_strategy": "stop"}, f"RSIMConfig: conclude_strategy 'stop' is not a strategy ({RSIM_NAMES})"),
]  # fmt: skip

VALID_BOUNDARIES = [
    ("cot", {"chain_tokens": 1, "answer_tokens": 1, "temperature": 0.0}),
    ("cot", {"temperature": 5.0}),
    ("sc", {"samples": 1, "chain_tokens": 1}),
    ("rsim", {"max_steps": 1, "step_tokens": 1, "answer_tokens": 1, "start_strategy": "decompose",
              "fallback_strategy": "verify", "conclude_strategy": "summarise"}),
    ("tot", {"proposals": 1, "beam": 1, "max_depth": 1, "step_tokens": 1, "value_mode": "words"}),
    ("bot", {"iterations": 1, "trees": 1, "branching": 1, "max_depth": 1, "max_sinks": 1, "step_tokens": 1,
             "max_expansions": 1, "distinct_retries": 0, "aggregation": "greedy", "policies": ("bfs",)}),
    ("tr", {"max_outgoing": 0, "max_incoming": 0, "max_into_target_from_chain": 0, "max_chain_rollbacks": 0,
            "max_steps": 1, "vote": "weighted"}),
    ("gg", {"paths": 1, "candidates": 1, "max_steps": 1, "min_step_tokens": 256, "vote": "top1"}),
    ("gg", {"min_step_tokens": 0, "vote": "majority"}),
]  # fmt: skip


@pytest.mark.parametrize(("method", "options", "message"), INVALID)
def test_invalid_values_are_refused_with_a_message_naming_the_field(method, options, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        METHODS[method].config(**options)


@pytest.mark.parametrize(
    ("method", "options", "message"),
    [
        ("sc", {"samples": "abc"}, "option 'samples' of SelfConsistencyConfig needs int, got 'abc'"),
        ("sc", {"samples": [1]}, "option 'samples' of SelfConsistencyConfig needs int, got [1]"),
        ("sc", {"samples": None}, "option 'samples' of SelfConsistencyConfig needs int, got None"),
        ("sc", {"samples": True}, "option 'samples' of SelfConsistencyConfig needs int, got True"),
        ("sc", {"temperature": float("nan")}, "option 'temperature' of SelfConsistencyConfig needs float, got nan"),
        ("sc", {"temperature": "hot"}, "option 'temperature' of SelfConsistencyConfig needs float, got 'hot'"),
        ("bot", {"aggregation": "mean"},
         "option 'aggregation' of BoTConfig needs one of 'greedy', 'best_first', got 'mean'"),
        ("bot", {"policies": "dfs"}, "option 'policies' of BoTConfig needs tuple, got 'dfs'"),
        ("bot", {"max_expansions": "many"}, "option 'max_expansions' of BoTConfig needs int | None, got 'many'"),
        ("cot", {"answer_pattern": 5}, "option 'answer_pattern' of CoTConfig needs str | None, got 5"),
    ],
)  # fmt: skip
def test_options_of_the_wrong_type_are_named_with_the_type_they_need(method, options, message):
    with pytest.raises(OptionError, match=f"^{re.escape(message)}$"):
        make_config(method, **options)


def test_options_are_converted_where_the_meaning_is_plain():
    assert make_config("sc", temperature=1).temperature == 1.0  # an int where a float is asked
    assert make_config("bot", policies=["dfs", "bfs"]).policies == ("dfs", "bfs")  # JSON lists as tuples
    assert make_config("bot", max_expansions=None).max_expansions is None


@pytest.mark.parametrize(("method", "options"), VALID_BOUNDARIES)
def test_boundary_values_are_accepted(method, options):
    config = make_config(method, **options)
    assert all(getattr(config, key) == value for key, value in options.items())


@dataclasses.dataclass
class Knobs:
    limit: int | None = None
    mode: typing.Literal["fast", "exact"] = "fast"
    widths: tuple[int, ...] = ()
    scale: float = 1.0
    strict: bool = False
    name: str = ""


def test_options_are_converted_to_their_field_types_and_a_bad_one_is_named():
    from thoughtgraph.reasoning.options import check_options

    converted = check_options(Knobs, {"limit": None, "scale": 2, "widths": [1, 2], "mode": "exact", "other": 1})
    assert converted == {"limit": None, "mode": "exact", "widths": (1, 2), "scale": 2.0}
    assert isinstance(converted["scale"], float) and isinstance(converted["widths"], tuple)
    for options, needs in [
        ({"limit": "3"}, "int | None, got '3'"),
        ({"mode": "slow"}, "one of 'fast', 'exact', got 'slow'"),
        ({"widths": [1, "2"]}, "tuple, got [1, '2']"),
        ({"scale": "x"}, "float, got 'x'"),
        ({"strict": 1}, "bool, got 1"),
        ({"name": 3}, "str, got 3"),
    ]:
        with pytest.raises(OptionError) as raised:
            check_options(Knobs, options)
        assert str(raised.value) == f"option {next(iter(options))!r} of Knobs needs {needs}"


@dataclasses.dataclass
class Shapes:
    pair: tuple[int, str] = (0, "")
    nothing: None = None
    scale: float = 1.0


def test_fixed_length_tuples_none_fields_and_booleans_where_a_float_is_asked():
    from thoughtgraph.reasoning.options import check_options

    assert check_options(Shapes, {"pair": [2, "b"]}) == {"pair": (2, "b")}  # a JSON list of the right arity
    for options, needs in [
        ({"pair": [2]}, "tuple, got [2]"),  # too short
        ({"pair": [2, "b", 3]}, "tuple, got [2, 'b', 3]"),  # too long
        ({"pair": ["b", 2]}, "tuple, got ['b', 2]"),  # each place has its own type
        ({"pair": "2b"}, "tuple, got '2b'"),  # a string is not a sequence of options
        ({"nothing": 0}, "None, got 0"),  # NoneType is named as Python writes the value
        ({"scale": True}, "float, got True"),  # a JSON true is not 1.0
    ]:
        with pytest.raises(OptionError) as raised:
            check_options(Shapes, options)
        assert str(raised.value) == f"option {next(iter(options))!r} of Shapes needs {needs}"


def test_sized_and_server_setting_fields_keep_their_default_and_say_who_may_set_them():
    from thoughtgraph.reasoning.options import is_server_setting, server_setting, size_kind, sized

    @dataclasses.dataclass
    class Declared:
        width: int = sized(4, "width")
        tokens: int = sized(256, "tokens")
        planner: str | None = server_setting("llamacpp:smollm2")
        plain: float = 0.5

    declared = {f.name: f for f in dataclasses.fields(Declared)}
    assert Declared() == Declared(4, 256, "llamacpp:smollm2", 0.5)
    assert [size_kind(declared[name]) for name in ("width", "tokens", "planner", "plain")] == [
        "width", "tokens", None, None
    ]  # fmt: skip
    assert [is_server_setting(declared[name]) for name in ("width", "planner", "plain")] == [False, True, False]
    with pytest.raises(ValueError, match="size kind 'breadth' is not one of"):
        sized(1, "breadth")
