import itertools

import numpy as np
import pytest
from scipy.stats import norm

from thoughtgraph.agents.tools import get_tool
from thoughtgraph.agents.tools.nvfp4 import (
    E2M1_GRID,
    detect_hot_channels,
    hot_channel_patch,
    nvfp4_quantize,
    round_e4m3,
)

# -- LB-BSP ------------------------------------------------------------------------------------------


def test_cpu_rule_sums_to_the_global_batch_gives_faster_workers_more_and_shrinks_the_gap():
    result = get_tool("lbbsp_batch_sizes").invoke(
        {"global_batch": 256, "batch_history": [[64, 64], [64, 64], [64, 64], [64, 64]],
         "time_history": [[1.0, 1.0], [2.0, 2.0], [0.5, 0.5], [1.0, 1.2]]}
    )  # fmt: skip
    sizes = result["batch_sizes"]
    assert sum(sizes) == 256
    assert sizes[2] > sizes[0] > sizes[1]  # speeds 128, 32, 64 samples/s... worker 2 fastest
    assert result["predicted_gap_seconds"] < result["equal_split_gap_seconds"]


def test_gpu_rule_equalises_profiled_times_within_memory_caps():
    profiles = [
        {"batches": [16, 128], "seconds": [0.1, 0.8], "memory_cap": 200},
        {"batches": [16, 128], "seconds": [0.2, 1.6], "memory_cap": 200},
        {"batches": [16, 128], "seconds": [0.1, 0.8], "memory_cap": 60},
    ]
    result = get_tool("lbbsp_batch_sizes").invoke({"global_batch": 240, "mode": "gpu", "profiles": profiles})
    sizes = result["batch_sizes"]
    assert sum(sizes) == 240 and sizes[2] <= 60 and sizes[0] > sizes[1]
    assert result["predicted_gap_seconds"] < result["equal_split_gap_seconds"]


def test_simulation_lbbsp_beats_bsp_with_stragglers():
    result = get_tool("lbbsp_simulate").invoke({"workers": 8, "speed_spread": 4.0, "iterations": 50, "seed": 1})
    assert result["speedup"] > 1.3


@pytest.mark.parametrize(
    "arguments",
    [
        {"global_batch": -5, "batch_history": [[1]], "time_history": [[1]]},
        {"global_batch": 8, "batch_history": [[1, 2]], "time_history": [[1]]},
        {"global_batch": 8, "batch_history": [[1]], "time_history": [[float("nan")]]},
        {"global_batch": 8, "batch_history": [], "time_history": []},
        {"global_batch": 8, "mode": "gpu"},
    ],
)
def test_lbbsp_rejects_bad_input(arguments):
    assert get_tool("lbbsp_batch_sizes").invoke(arguments).startswith("tool error: lbbsp_batch_sizes: ")


# -- NVFP4 -------------------------------------------------------------------------------------------


def test_quantised_values_lie_on_the_e2m1_grid_times_the_block_scale():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 48)) * 3
    dequantised, scales, tensor_scale = nvfp4_quantize(x)
    blocks = dequantised.reshape(4, 3, 16)
    on_grid = np.abs(blocks) / (scales[..., None] * tensor_scale)
    assert np.allclose(np.min(np.abs(on_grid[..., None] - E2M1_GRID), axis=-1), 0, atol=1e-9)
    assert np.array_equal(round_e4m3(scales), scales)  # block scales are E4M3 values
    assert get_tool("nvfp4_quantize").invoke({"values": x.tolist()})["relative_mse"] < 0.05


def test_e4m3_rounding_known_values():
    assert round_e4m3(np.array([1.0, 1.06, 1.07, 500.0, 0.0])).tolist() == [1.0, 1.0, 1.125, 448.0, 0.0]


def test_e4m3_rounding_equals_torchs_float8_cast_on_200k_values_and_every_tie():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    values = np.exp(rng.uniform(np.log(2.0**-12), np.log(448.0), 200_000))  # subnormals through the maximum
    grid = np.unique(torch.arange(0, 127, dtype=torch.uint8).view(torch.float8_e4m3fn).float().numpy())
    ties = (grid[:-1] + grid[1:]) / 2  # exactly half way between neighbours: round to the even mantissa
    for sample in (values, ties, grid):
        expected = torch.from_numpy(sample.astype(np.float32)).to(torch.float8_e4m3fn).float().numpy()
        assert np.array_equal(round_e4m3(sample.astype(np.float32)).astype(np.float32), expected)


def test_a_planted_persistent_channel_is_found_and_a_one_step_spike_is_not():
    rng = np.random.default_rng(1)
    stats = np.abs(rng.standard_normal((50, 32))) + 1
    stats[:, 5] *= 30  # persistent
    stats[17, 9] *= 30  # one-step spike
    result = detect_hot_channels(stats, hot_factor=8, persistence=0.8)
    assert result.persistent == [5] and result.transient == [9]


def test_the_hot_channel_patch_reduces_output_error():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, 64))
    x[:, [3, 40]] *= 50
    w = rng.standard_normal((64, 32))
    result = hot_channel_patch(x, w, [3, 40])
    assert result.error_patched < result.error_quantised and result.error_reduction > 0.1
    with pytest.raises(ValueError, match="out of range"):
        hot_channel_patch(x, w, [99])


def test_nvfp4_tools_reject_bad_input(tmp_path):
    assert (
        get_tool("nvfp4_quantize")
        .invoke({"values": [[1.0, float("nan")]]})
        .startswith("tool error: nvfp4_quantize: invalid")
    )
    assert (
        get_tool("nvfp4_quantize")
        .invoke({"path": str(tmp_path / "missing.npy")})
        .startswith("tool error: nvfp4_quantize: invalid")
    )
    assert "give magnitudes" in get_tool("nvfp4_hot_channels").invoke({"channel_max_abs": [[-1.0, 2.0]]})


# -- randomized smoothing ----------------------------------------------------------------------------


def test_a_constant_classifier_certifies_the_hand_computed_radius():
    n, alpha, sigma = 1000, 0.001, 0.5
    result = get_tool("randomized_smoothing_certify").invoke(
        {"weights": [[0.0, 0.0], [0.0, 0.0]], "bias": [0.0, 1.0], "x": [0.3, -0.2], "sigma": sigma, "n": n,
         "alpha": alpha}
    )  # fmt: skip
    p_lower = alpha ** (1 / n)  # Clopper-Pearson lower bound with every sample in the top class
    assert result["predicted_class"] == 1 and not result["abstained"]
    assert result["radius"] == pytest.approx(sigma * norm.ppf(p_lower), rel=1e-9)


def test_smoothing_abstains_on_a_coin_flip_and_rejects_bad_shapes():
    result = get_tool("randomized_smoothing_certify").invoke(
        {"weights": [[1.0], [-1.0]], "bias": [0.0, 0.0], "x": [0.0], "sigma": 1.0, "n": 200}
    )
    assert result["abstained"] and result["radius"] == 0.0
    for bad in ({"bias": [0.0]}, {"x": [0.0, 1.0]}, {"sigma": -1.0}):
        arguments = {"weights": [[1.0], [-1.0]], "bias": [0.0, 0.0], "x": [0.0], "sigma": 1.0, **bad}
        assert get_tool("randomized_smoothing_certify").invoke(arguments).startswith("tool error: randomized_smoothing")


def test_registry_lists_tools_and_results_are_json():
    import json

    from thoughtgraph.agents.tools import TOOLS, list_tools

    names = list_tools()
    assert {"lbbsp_batch_sizes", "nvfp4_hot_channels", "randomized_smoothing_certify"} <= set(names)
    assert all(n == n.lower() and " " not in n for n in names)
    assert {spec.fidelity for spec in TOOLS.values()} <= {"faithful", "approximation"}
    json.dumps(get_tool("lbbsp_simulate").invoke({"iterations": 5}))
    with pytest.raises(KeyError, match="no tool named"):
        get_tool("nonsense")
    assert list(itertools.islice(names, 1))
