import pytest

from thoughtgraph.backends import Constraint, InvalidRequestError, Message, Request


def test_chat_request_builds_messages_from_pairs():
    request = Request.chat(("system", "Be brief."), ("user", "Hi"), n=2)
    assert request.messages == (Message("system", "Be brief."), Message("user", "Hi"))
    assert request.n == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prompt": ""}, "prompt is empty"),
        ({"prompt": "   \n"}, "prompt is empty"),
        ({"messages": ()}, "message list is empty"),
        ({"messages": (Message("user", " "),)}, "every message is empty"),
        ({"prompt": "x", "messages": (Message("user", "y"),)}, "exactly one"),
        ({}, "exactly one"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens must be a positive integer, got 0"),
        ({"prompt": "x", "max_tokens": -5}, "max_tokens must be a positive integer, got -5"),
        ({"prompt": "x", "n": 0}, "n must be a positive integer"),
        ({"prompt": "x", "temperature": -0.1}, "temperature must be in"),
        ({"prompt": "x", "top_p": 0.0}, "top_p must be in"),
        ({"prompt": "x", "stop": ("",)}, "stop strings must be non-empty"),
    ],
)
def test_bad_requests_fail_at_construction_naming_the_problem(options, message):
    with pytest.raises(InvalidRequestError, match=message):
        Request(**options)


def test_bad_message_role_is_named():
    with pytest.raises(InvalidRequestError, match="role must be"):
        Message("robot", "hi")


def test_single_stop_string_is_accepted_as_a_tuple():
    assert Request(prompt="x", stop="\n").stop == ("\n",)


@pytest.mark.parametrize(
    ("kind", "kwargs", "message"),
    [("json_schema", {}, "needs its value"), ("regex", {"pattern": ""}, "needs its value"), ("xml", {}, "kind must")],
)
def test_bad_constraints_are_named(kind, kwargs, message):
    with pytest.raises(InvalidRequestError, match=message):
        Constraint(kind, **kwargs)


def test_cache_key_covers_seed_model_and_sampling():
    base = Request(prompt="x", seed=1)
    assert base.cache_key("m") == Request(prompt="x", seed=1).cache_key("m")
    assert base.cache_key("m") != Request(prompt="x", seed=2).cache_key("m")
    assert base.cache_key("m") != base.cache_key("other-model")
    assert base.cache_key("m") != Request(prompt="x", seed=1, top_p=0.9).cache_key("m")


def test_determinism_depends_on_temperature_or_seed():
    assert Request(prompt="x").is_deterministic
    assert Request(prompt="x", temperature=0.7, seed=3).is_deterministic
    assert not Request(prompt="x", temperature=0.7).is_deterministic


def test_a_negative_repeat_floor_is_refused():
    with pytest.raises(InvalidRequestError, match="stop_repeated_sentence must be a non-negative integer"):
        Request(prompt="p", stop_repeated_sentence=-1)
