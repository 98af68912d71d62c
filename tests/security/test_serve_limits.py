"""Every method declares, per option, whether a network client may set it and which server limit bounds it;
a method added without those declarations fails here rather than becoming an unbounded request field."""

from __future__ import annotations

import typing
from dataclasses import fields

import pytest

from thoughtgraph.reasoning.api import make_config
from thoughtgraph.reasoning.methods import METHODS
from thoughtgraph.reasoning.options import is_server_setting, size_kind
from thoughtgraph.server.limits import ServeLimits, oversized
from thoughtgraph.server.protocol import RequestError, parse_request


@pytest.mark.parametrize("method", list(METHODS))
def test_every_int_or_list_option_is_sized_or_server_configuration(method):
    config = METHODS[method].config
    hints = typing.get_type_hints(config)
    for option in fields(config):
        text = str(hints[option.name])
        if "int" in text.replace("Literal", "") or "tuple" in text:
            assert size_kind(option) or is_server_setting(option), f"{method}.{option.name} has no size limit"
        if "Backend" in text or option.name.endswith(("_file", "_path", "_pattern")) or option.name == "planner":
            assert is_server_setting(option), f"{method}.{option.name} must be server configuration"


@pytest.mark.parametrize("method", list(METHODS))
def test_the_defaults_fit_the_default_limits_and_one_over_is_refused(method):
    config = METHODS[method].config
    defaults = {f.name: getattr(make_config(method), f.name) for f in fields(config) if size_kind(f)}
    as_given = {k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items() if v is not None}
    assert oversized(config, as_given, ServeLimits()) is None
    limits = ServeLimits(max_width=2, max_depth=2, max_tokens=2, max_count=2)
    for name, value in as_given.items():
        ceiling = limits.ceiling(size_kind(next(f for f in fields(config) if f.name == name)))
        over = [0] * (ceiling + 1) if isinstance(value, list) else ceiling + 1
        assert oversized(config, {name: over}, limits)[0] == name
        assert oversized(config, {name: [0] * ceiling if isinstance(value, list) else ceiling}, limits) is None


def test_server_options_are_the_servers_and_requests_cannot_override_them():
    body = {"model": "rsim", "messages": [{"role": "user", "content": "1+1?"}]}
    run = parse_request(body, server_options={"rsim": {"planner": "scripted:p.yaml", "max_steps": 3}})
    assert run.config.planner == "scripted:p.yaml" and run.config.max_steps == 3
    run = parse_request({**body, "max_steps": 5}, server_options={"rsim": {"max_steps": 3}})
    assert run.config.max_steps == 5  # a client-settable option: the request's value wins
    with pytest.raises(RequestError, match="server configuration"):
        parse_request({**body, "planner": "scripted:p.yaml"}, server_options={"rsim": {"planner": "x"}})
    assert "planner" not in METHODS["rsim"].client_options()


def test_budgets_are_lowered_to_the_servers_ceilings():
    body = {"model": "cot", "messages": [{"role": "user", "content": "1+1?"}], "max_calls": 10**9}
    run = parse_request(body, ServeLimits(max_run_calls=7, max_run_tokens=100, max_run_seconds=3))
    assert run.budget == {"max_calls": 7, "max_tokens": 100, "max_seconds": 3}
    run = parse_request({**body, "max_calls": 2, "max_seconds": 1.5}, ServeLimits(max_run_seconds=3))
    assert run.budget["max_calls"] == 2 and run.budget["max_seconds"] == 1.5


@pytest.mark.integration  # the CLI as a subprocess
def test_backend_specs_bound_their_sizes_everywhere_a_spec_is_given(tmp_path):
    """``slots`` costs about 90 MB of KV cache each: an unbounded spec would exhaust memory from the CLI, the
    API or a server's configuration alike. Refused before any model loads, with the reason."""
    import subprocess

    from tests.security.serving import THOUGHTGRAPH
    from thoughtgraph.backends import BackendConfigError, create_backend

    for spec in ("llamacpp:smollm2#slots=100000", "llamacpp:smollm2#threads=99999"):
        with pytest.raises(BackendConfigError, match="out of range"):
            create_backend(spec)
        for command in (["solve", "1+1?", "--backend", spec], ["serve", "--backend", spec, "--port", "0"]):
            refused = subprocess.run([THOUGHTGRAPH, *command], capture_output=True, text=True, timeout=120)
            assert refused.returncode == 2 and "out of range" in refused.stderr, refused.stderr[-500:]
    assert "90 MB" in subprocess.run([THOUGHTGRAPH, "solve", "1+1?", "--backend", "llamacpp:smollm2#slots=65"],
                                     capture_output=True, text=True, timeout=120).stderr  # fmt: skip
