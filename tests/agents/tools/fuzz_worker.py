"""Fuzz one registered tool from its JSON schema, in a process capped in memory.

Usage: python tests/agents/tools/fuzz_worker.py TOOL_NAME EXAMPLES

Run by ``test_tool_fuzz.py`` in a child process whose address space is capped (``MEMORY_CAP``), so a
call that tries to allocate more fails loudly here instead of swapping the machine. Every call must
end in a finite, schema-valid result or a clean tool error within ``SECONDS_CAP``; an "internal"
error (a bug, not bad input) or an out-of-memory error fails the run.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from pathlib import Path

MEMORY_CAP = 3 << 30
SECONDS_CAP = 30.0
NASTY = [float("nan"), float("inf"), -float("inf"), 1e308, -1e308, 1e-308, 0.0, -0.0, 2**63, -(2**63)]


def leaves(value, path=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield path


def replaced(value, path, new):
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = replaced(value[path[0]], path[1:], new)
    return copy


def main(name: str, examples: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.agents.tools.schema_strategy import from_schema
    from tests.agents.tools.tool_examples import VALID_CALLS
    from thoughtgraph.agents.tools.registry import TOOLS, ToolError, call_tool, get_tool

    tool = get_tool(name)
    outcomes = {"result": 0, "tool error": 0}
    schema = tool.args_schema  # the JSON Schema agents are shown

    numbers = st.one_of(st.sampled_from(NASTY), st.floats(allow_nan=False), st.integers(-(10**12), 10**12))
    seeds = st.one_of(from_schema(schema), st.just(VALID_CALLS[name]))

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(arguments=seeds, data=st.data())
    def fuzz(arguments, data):
        spots = list(leaves(arguments))
        if spots and data.draw(st.booleans(), label="scale every number"):
            factor = data.draw(st.sampled_from([0.0, 1e-300, 1e-12, -1.0, 1e12, 1e300]), label="factor")
            for spot in spots:
                value = _get(arguments, spot)
                arguments = replaced(arguments, spot, value * factor if isinstance(value, float) else value)
        for _ in range(data.draw(st.integers(0, 3), label="numbers to corrupt") if spots else 0):
            spot = data.draw(st.sampled_from(spots), label="where")
            arguments = replaced(arguments, spot, data.draw(numbers, label="with"))
        started = time.perf_counter()
        try:
            result = call_tool(name, arguments)
        except ToolError as error:
            outcomes["tool error"] += 1
            assert not error.internal, f"{name}({json.dumps(arguments)[:2000]}) hit a bug: {error}"
            assert "out of memory" not in str(error), f"{name}({json.dumps(arguments)[:2000]}): {error}"
            assert str(error).startswith(f"tool error: {name}:")
        else:
            outcomes["result"] += 1
            TOOLS[name].outputs.model_validate(result)  # the result is valid against the tool's output schema
            text = json.dumps(result, allow_nan=False)  # raises on NaN/inf
            assert all(math.isfinite(x) for x in _numbers(json.loads(text)))
        elapsed = time.perf_counter() - started
        assert elapsed < SECONDS_CAP, f"{name}({json.dumps(arguments)[:2000]}) took {elapsed:.1f} s"

    fuzz()
    print(json.dumps({"tool": name, **outcomes}))


def _get(value, path):
    for part in path:
        value = value[part]
    return value


def _numbers(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield float(value)


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    main(sys.argv[1], int(sys.argv[2]))
