"""Method options checked against the config dataclass's field types, so a wrong type is an error
naming the option, the value and the type it needs (not a TypeError deep inside a method)."""

from __future__ import annotations

import math
import types
import typing
from dataclasses import fields
from typing import Any, Literal, Union


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
    for field in fields(config_type):
        if field.name not in options:
            continue
        value = options[field.name]
        try:
            checked[field.name] = _convert(value, hints[field.name])
        except (TypeError, ValueError):
            raise OptionError(
                f"option {field.name!r} of {config_type.__name__} needs {_describe(hints[field.name])}, got {value!r}"
            ) from None
    return checked
