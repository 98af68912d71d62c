"""Method options checked against the config dataclass's field types, so a wrong type is an error
naming the option, the value and the type it needs (not a TypeError deep inside a method).

Each config field also says who may set it and how large it may grow, in its dataclass metadata:

- ``sized(default, kind)``: a size a network client may set up to the server's ceiling for ``kind``
  (``width``: parallel branches; ``depth``: sequential steps or rounds; ``tokens``: tokens of one model
  call; ``count``: any other count, and the length of a tuple option);
- ``server_setting(default)``: server configuration (a backend, a file, a pattern the server compiles):
  a library or CLI user sets it, a request over HTTP never does.

Fields without metadata (floats, choices, short strings) are client-settable as they are.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import Field, field, fields
from typing import Any, Literal, Union

SizeKind = Literal["width", "depth", "tokens", "count"]
SIZE_KINDS: tuple[SizeKind, ...] = ("width", "depth", "tokens", "count")


class OptionError(ValueError):
    """A method option has a value of the wrong type or outside its choices."""


def _describe(annotation: Any) -> str:
    if typing.get_origin(annotation) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    return getattr(annotation, "__name__", str(annotation)).replace("NoneType", "None")


def _convert(value: Any, annotation: Any) -> Any:
    """``value`` as ``annotation`` wants it; raises TypeError/ValueError when it is not one."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        for option in arguments:
            try:
                return _convert(value, option)
            except (TypeError, ValueError):
                continue
        raise TypeError
    if annotation is type(None):
        if value is not None:
            raise TypeError
        return None
    if origin is Literal:
        if value not in arguments:
            raise ValueError
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise TypeError
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return tuple(_convert(v, arguments[0]) for v in value)
        if len(arguments) != len(value):
            raise ValueError
        return tuple(_convert(v, a) for v, a in zip(value, arguments, strict=True))
    if annotation is bool:
        if not isinstance(value, bool):
            raise TypeError
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise TypeError
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise TypeError
        return value
    return value


def check_options(config_type: type, options: dict[str, Any]) -> dict[str, Any]:
    """The options converted to the field types of ``config_type``; OptionError names the first bad one."""
    hints = typing.get_type_hints(config_type)
    checked = {}
    for option in fields(config_type):
        if option.name not in options:
            continue
        value = options[option.name]
        try:
            checked[option.name] = _convert(value, hints[option.name])
        except (TypeError, ValueError):
            raise OptionError(
                f"option {option.name!r} of {config_type.__name__} needs {_describe(hints[option.name])}, got {value!r}"
            ) from None
    return checked


def sized(default: Any, kind: SizeKind) -> Any:
    """A config field holding a size of kind ``kind`` (bounded by a server's ceiling for that kind)."""
    if kind not in SIZE_KINDS:
        raise ValueError(f"size kind {kind!r} is not one of {SIZE_KINDS}")
    return field(default=default, metadata={"size": kind})


def server_setting(default: Any) -> Any:
    """A config field that is server configuration: a request over HTTP may not set it."""
    return field(default=default, metadata={"server_setting": True})


def size_kind(config_field: Field) -> SizeKind | None:
    return config_field.metadata.get("size")


def is_server_setting(config_field: Field) -> bool:
    return bool(config_field.metadata.get("server_setting"))
