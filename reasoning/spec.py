"""What a reasoning method is to the rest of thoughtgraph: one :class:`MethodSpec`.

A method module ends with its spec::

    SPEC = MethodSpec(
        "sc", "Self-consistency", SelfConsistencyConfig, self_consistency,
        tiny={"samples": 2, "chain_tokens": 64},
    )

and :mod:`thoughtgraph.reasoning.methods` lists it. ``solve``, the CLI, ``serve`` (which options a network
client may set: the config fields' own ``sized``/``server_setting`` declarations, see
:mod:`~thoughtgraph.reasoning.options`), the eval runner, the tests and the benchmarks all read the spec, so
adding a method touches no other file.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from thoughtgraph.reasoning.context import RunContext
from thoughtgraph.reasoning.options import check_options, is_server_setting
from thoughtgraph.reasoning.outcome import Outcome

MethodRunner = Callable[[RunContext, Any], Awaitable[Outcome]]
PRESETS = Path(__file__).parent / "presets"


def dataset_presets(method: str) -> Mapping[str, Mapping[str, Any]]:
    """The per-dataset settings of a built-in method, from ``reasoning/presets/<method>.yaml`` (none: empty)."""
    path = PRESETS / f"{method}.yaml"
    loaded = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    return MappingProxyType({name: MappingProxyType(dict(values)) for name, values in (loaded or {}).items()})


@dataclass(frozen=True)
class MethodSpec:
    name: str
    """What users type: ``solve(..., method=name)``, ``--method name``, ``"model": name`` over HTTP."""
    title: str
    """The method's name in prose (the paper's title where there is one)."""
    config: type
    """A dataclass of the method's options; each field's metadata says who may set it over HTTP."""
    run: MethodRunner
    """``await run(context, config)``: the whole method, budgets held by ``context``."""
    tiny: Mapping[str, Any] = field(default_factory=dict)
    """The smallest run that still exercises every part of the method: tests, benchmarks and demos use it."""
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Per-dataset settings (``solve(..., preset="gsm8k")``): the paper's, where it gives them."""
    fit: Callable[[Any, Any], Any] | None = None
    """``fit(config, allowance)``: the config shrunk to what a small budget allows (fewer, shorter branches;
    :class:`~thoughtgraph.reasoning.fitting.Allowance`); None: the method runs as configured."""

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name != self.name.lower():
            raise ValueError(f"method name {self.name!r} must be a lower-case identifier")
        if not is_dataclass(self.config):
            raise TypeError(f"method {self.name!r}: its config {self.config!r} is not a dataclass")
        for label, options in [("tiny", self.tiny), *((f"preset {p!r}", o) for p, o in self.presets.items())]:
            unknown = set(options) - set(self.option_names())
            if unknown:
                raise ValueError(f"method {self.name!r}: {label} sets unknown option(s) {sorted(unknown)}")

    def option_names(self) -> list[str]:
        return [f.name for f in fields(self.config)]

    def client_options(self) -> list[str]:
        """The options a network client may set (server settings left out)."""
        return sorted(f.name for f in fields(self.config) if not is_server_setting(f))

    def server_settings(self) -> list[str]:
        """The options only whoever runs the server sets (backends, files, patterns it compiles)."""
        return sorted(f.name for f in fields(self.config) if is_server_setting(f))

    def make_config(self, preset: str | None = None, **options: Any) -> Any:
        """The config: the defaults, then the preset's values, then ``options`` (each checked against its type)."""
        if preset is not None:
            if preset not in self.presets:
                raise ValueError(
                    f"method {self.name!r} has no preset {preset!r}; it has {sorted(self.presets) or 'none'}"
                )
            options = {**self.presets[preset], **options}
        unknown = set(options) - set(self.option_names())
        if unknown:
            raise ValueError(
                f"method {self.name!r} has no option(s) {sorted(unknown)}; it has {sorted(self.option_names())}"
            )
        return self.config(**check_options(self.config, options))
