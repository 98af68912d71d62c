"""The registry of reasoning methods: every :class:`~thoughtgraph.reasoning.spec.MethodSpec` by name.

A new method is a module that ends with ``SPEC = MethodSpec(...)`` and one entry in ``BUILT_IN`` below;
a method that lives outside thoughtgraph calls :func:`register_method` once before use.
"""

from __future__ import annotations

from thoughtgraph.reasoning import bon, bot, cot, gg, rsim, sc, tot, tr
from thoughtgraph.reasoning.spec import MethodSpec

BUILT_IN: tuple[MethodSpec, ...] = (cot.SPEC, sc.SPEC, bon.SPEC, tot.SPEC, bot.SPEC, tr.SPEC, gg.SPEC, rsim.SPEC)
METHODS: dict[str, MethodSpec] = {spec.name: spec for spec in BUILT_IN}


def register_method(spec: MethodSpec) -> MethodSpec:
    """Make ``spec`` reachable by name from ``solve``, the CLI, ``serve`` and the eval runner."""
    if spec.name in METHODS and METHODS[spec.name] is not spec:
        raise ValueError(f"a method named {spec.name!r} is already registered")
    METHODS[spec.name] = spec
    return spec


def method_spec(name: str) -> MethodSpec:
    """The spec of ``name``; ValueError listing the methods when there is none."""
    if not isinstance(name, str) or name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(METHODS)}")
    return METHODS[name]
