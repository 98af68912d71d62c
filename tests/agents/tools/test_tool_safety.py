"""Inputs that broke the tools before (each reproduced from the issue), and the error contract: an
agent gets a "tool error: NAME: ..." message, never an exception; Python callers get ToolError."""

from __future__ import annotations

import json
import math
import re
import resource

import pytest

from thoughtgraph.agents.tools import get_tool
from thoughtgraph.agents.tools.registry import ToolError, call_tool


def outcome(name: str, arguments: dict) -> dict | ToolError:
    try:
        return call_tool(name, arguments)
    except ToolError as error:
        return error


def assert_clean(name: str, arguments: dict) -> dict | ToolError:
    result = outcome(name, arguments)
    if isinstance(result, ToolError):
        assert not result.internal, str(result)
        assert str(result).startswith(f"tool error: {name}: ")
        assert "out of memory" not in str(result)
    else:
        json.dumps(result, allow_nan=False)
    return result


def test_an_agent_gets_error_messages_and_python_gets_tool_errors():
    message = get_tool("lbbsp_batch_sizes").invoke({"global_batch": -1, "batch_history": [[1]], "time_history": [[1]]})
    assert message.startswith("tool error: lbbsp_batch_sizes: invalid arguments: global_batch:")
    with pytest.raises(ToolError, match="global_batch"):
        call_tool("lbbsp_batch_sizes", {"global_batch": -1, "batch_history": [[1]], "time_history": [[1]]})
    with pytest.raises(KeyError, match="no tool named"):
        call_tool("rm -rf", {})


def test_hot_channel_patch_on_exact_and_all_zero_inputs():
    exact = assert_clean(
        "nvfp4_hot_channel_patch",
        {"activations": {"values": [[1.0, 2.0]]}, "weights": {"values": [[1.0], [0.5]]}, "hot_channels": [0]},
    )
    assert exact["error_quantised"] == 0.0 and exact["error_reduction"] is None  # nothing to reduce
    zeros = assert_clean(
        "nvfp4_hot_channel_patch",
        {"activations": {"values": [[0.0, 0.0]]}, "weights": {"values": [[0.0], [0.0]]}, "hot_channels": [0]},
    )
    assert zeros["error_quantised"] == 0.0 and zeros["error_patched"] == 0.0  # fmt: skip


def test_overflowing_sample_counts_and_staleness_give_finite_pisces_weights():
    huge = {"samples": [1e308, 1e308], "staleness": [0, 3]}
    assert assert_clean("pisces_aggregation_weights", huge)["weights"] == pytest.approx([1 / 2, 1 / 4])  # as Plato
    weights = assert_clean("pisces_aggregation_weights", {**huge, "renormalise": True})["weights"]
    assert weights == pytest.approx([2 / 3, 1 / 3])  # shares 1/2 each; factors 1 and 1/2; renormalised
    far_inputs = {"samples": [1, 1], "staleness": [1e9, 1e9], "beta": 10, "renormalise": True}
    far = assert_clean("pisces_aggregation_weights", far_inputs)
    assert far["weights"] == pytest.approx([0.5, 0.5])


@pytest.mark.parametrize(
    "arguments",
    [
        {"feature_similarity": [[1, -3], [-3, 1]]},  # not positive semi-definite: a.S.a < 0
        {"feature_similarity": [[1]]},  # wrong shape
        {"feature_similarity": [[1, float("nan")], [float("nan"), 1]]},
        {"history_activations": [[-1, 0], [0, 1]]},  # negative frequencies gave negative probabilities
    ],
)
def test_remoe_prediction_refuses_bad_similarity_and_activations(arguments):
    base = {"prompt": [1.0, 0.0], "history_prompts": [[1, 0], [0, 1]], "history_activations": [[1, 0], [0, 1]]}
    result = assert_clean("remoe_predict_experts", {**base, **arguments})
    assert isinstance(result, ToolError) and any(
        word in str(result) for word in ("semi-definite", "must be 2 x 2", "NaN", ">= 0")
    ), str(result)


def test_calibre_weights_near_float64_limits():
    huge = [[1e300, 1e300], [-1e300, 1e300], [0, 1], [1, 0]]
    small = [[1.0, 2.0], [2.0, 1.0], [0.0, 0.0], [1.0, 1.0]]
    result = assert_clean("calibre_aggregation_weights", {"client_encodings": [huge, small], "clusters": 2})
    assert all(math.isfinite(w) for w in result["weights"]) and result["weights"][1] > result["weights"][0]


def test_lbbsp_extreme_speeds_give_valid_batch_sizes():
    result = assert_clean("lbbsp_batch_sizes", {"global_batch": 256, "batch_history": [[1], [1e9]],
                                                "time_history": [[1e9], [1e-9]]})  # fmt: skip
    assert sum(result["batch_sizes"]) == 256 and min(result["batch_sizes"]) >= 0
    caps = assert_clean("lbbsp_batch_sizes", {"global_batch": 10**9, "mode": "gpu", "profiles": [
        {"batches": [1, 10**9], "seconds": [1, 2], "memory_cap": 10**9 - 5},
        {"batches": [1, 10**9], "seconds": [1, 1000], "memory_cap": 10**9}]})  # fmt: skip
    assert sum(caps["batch_sizes"]) == 10**9 and caps["batch_sizes"][0] <= 10**9 - 5


def test_model_check_with_norm_layers_and_a_probe_of_the_wrong_width():
    state = {"fc.weight": [[1.0, 2.0]], "bn.weight": [1.0], "bn.bias": [0.0], "bn.running_mean": [0.0],
             "bn.running_var": [1.0], "bn.num_batches_tracked": [3]}  # fmt: skip
    arguments = {"trusted": state, "received": state, "probe": [[1.0, 2.0, 3.0]]}
    result = assert_clean("check_received_model", arguments)
    assert isinstance(result, ToolError) and "expects 2 features, the probe gives 3" in str(result)


@pytest.mark.parametrize(
    ("name", "arguments"),
    [  # sizes that asked for 61, 149, 74.5 and 19.4 GiB
        ("vfl_reconstruction_attack", {"samples": 500_000, "binary_features": 10, "output_width": 16}),
        ("randomized_smoothing_certify", {"weights": [[1.0]], "bias": [0.0], "x": [1.0], "sigma": 1, "n": 10**10}),
        ("remoe_place_experts", {"expert_seconds": [1.0], "functions": 10**10}),
        ("fedreview_simulate", {"clients": 2000, "attackers": 10, "rounds": 1}),
        ("pisces_simulate", {"clients": 10**6}),
        ("lbbsp_simulate", {"workers": 10**6, "iterations": 10**6}),
    ],
)
def test_sizes_are_bounded_before_anything_is_allocated(name, arguments):
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    result = assert_clean(name, arguments)
    assert isinstance(result, ToolError) and "invalid arguments" in str(result)
    assert resource.getrlimit(resource.RLIMIT_AS) == (soft, hard)


def test_non_finite_numbers_never_reach_json():
    for name, arguments in [
        ("nvfp4_quantize", {"values": [[float("inf"), 1.0]]}),
        ("lbbsp_batch_sizes", {"global_batch": 8, "batch_history": [[float("nan")]], "time_history": [[1.0]]}),
        ("pisces_client_utility", {"clients": [{"losses": [float("inf")]}]}),
    ]:
        result = assert_clean(name, arguments)
        assert isinstance(result, ToolError) and "NaN or infinite" in str(result)


def _reads_files(schema: dict) -> bool:
    """Whether an input schema has a field that names a file (by its name or description)."""
    text = json.dumps(schema)
    return ".npy" in text or re.search(r'"(\w+_)?path": \{', text) is not None


def test_each_tool_declares_its_effects_and_a_tool_that_takes_a_file_says_it_reads_files():
    from thoughtgraph.agents.tools import TOOLS

    readers = {name for name, spec in TOOLS.items() if _reads_files(spec.inputs.model_json_schema())}
    assert {"check_received_model", "randomized_smoothing_certify", "nvfp4_quantize"} <= readers
    assert not readers & {"lbbsp_simulate", "pisces_simulate", "fedreview_simulate"}  # simulators take numbers
    for name, spec in TOOLS.items():
        assert spec.effects == ("reads_files" if name in readers else "pure"), name
        assert not spec.needs_approval  # no registered tool changes state; checks that do are approved first
