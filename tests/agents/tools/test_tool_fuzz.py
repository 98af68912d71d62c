"""Every registered tool, fuzzed from its JSON schema and from mutations of a valid call (numbers
replaced by NaN, infinities, float64 extremes, huge integers; every number scaled by up to 1e±300),
in a child process capped at 3 GiB: each call ends in a finite JSON result or a clean tool error,
never a bug ("internal") error or an out-of-memory, within 30 s (``fuzz_worker.py``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.agents.tools.tool_examples import VALID_CALLS
from thoughtgraph.agents.tools import list_tools
from thoughtgraph.agents.tools.registry import call_tool

pytestmark = pytest.mark.integration  # a fuzzing subprocess per tool

WORKER = Path(__file__).with_name("fuzz_worker.py")
EXAMPLES = 40


def test_every_tool_has_a_valid_example_that_returns_finite_json():
    assert set(VALID_CALLS) == set(list_tools())
    for name, arguments in VALID_CALLS.items():
        json.dumps(call_tool(name, arguments), allow_nan=False)


@pytest.mark.parametrize("name", list_tools())
def test_fuzzed_calls_end_in_a_result_or_a_clean_tool_error(name):
    run = subprocess.run(
        [sys.executable, str(WORKER), name, str(EXAMPLES)], capture_output=True, text=True, timeout=900,
        cwd=Path(__file__).parents[3],
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    outcomes = json.loads(run.stdout.strip().splitlines()[-1])
    assert outcomes["result"] >= 1 and outcomes["tool error"] >= 1, outcomes
