"""Hypothesis strategies from the JSON schemas pydantic writes for tool inputs.

Covers what the tool schemas use: objects with properties and ``$ref`` into ``$defs``, ``anyOf``,
arrays with ``minItems``/``maxItems``, numbers and integers with bounds (inclusive and exclusive),
strings, booleans, ``enum``/``const`` and ``additionalProperties`` maps. Sizes are drawn small most of
the time (so a run covers many shapes) but integers and numbers also reach their schema bounds, and
unbounded numbers reach float64's extremes, which is where overflow hides.
"""

from __future__ import annotations

from hypothesis import strategies as st

MAX_LIST = 12


def _number(schema: dict, integer: bool) -> st.SearchStrategy:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if integer:
        low = None if low is None else int(low) + (1 if "exclusiveMinimum" in schema and low == int(low) else 0)
        high = None if high is None else int(high) - (1 if "exclusiveMaximum" in schema and high == int(high) else 0)
        near_low = -20 if low is None else max(low, -20)
        near_high = 20 if high is None else min(high, 20)
        near = st.integers(min_value=near_low, max_value=near_high) if near_low <= near_high else st.nothing()
        edges = [v for v in (low, high) if v is not None] or [0]
        return st.one_of(near, st.sampled_from(edges), st.integers(min_value=low, max_value=high))
    return st.floats(
        min_value=low, max_value=high, allow_nan=False, allow_infinity=False,
        exclude_min="exclusiveMinimum" in schema, exclude_max="exclusiveMaximum" in schema,
    )  # fmt: skip


def from_schema(schema: dict, root: dict | None = None) -> st.SearchStrategy:
    root = root or schema
    if "$ref" in schema:
        return from_schema(root["$defs"][schema["$ref"].split("/")[-1]], root)
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of([from_schema(option, root) for option in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return _number(schema, integer=True)
    if kind == "number":
        return _number(schema, integer=False)
    if kind == "string":
        return st.text(max_size=schema.get("maxLength", 40) if schema.get("maxLength", 40) < 40 else 40)
    if kind == "array":
        items = from_schema(schema.get("items", {}), root) if schema.get("items") else st.integers()
        low = schema.get("minItems", 0)
        return st.lists(items, min_size=low, max_size=max(low, min(schema.get("maxItems", MAX_LIST), MAX_LIST)))
    if kind == "object":
        properties = schema.get("properties", {})
        if not properties:
            values = from_schema(schema.get("additionalProperties") or {"type": "number"}, root)
            return st.dictionaries(st.text(min_size=1, max_size=8), values, max_size=4)
        required = set(schema.get("required", []))
        fixed = {k: from_schema(v, root) for k, v in properties.items() if k in required}
        optional = {k: from_schema(v, root) for k, v in properties.items() if k not in required}
        return st.fixed_dictionaries(fixed, optional=optional)
    return st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=5), st.none())
