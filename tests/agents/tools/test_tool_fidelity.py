"""Each tool against the paper or the reference code, with expectations worked out by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from thoughtgraph.agents.tools.calibre import divergence_rate
from thoughtgraph.agents.tools.lbbsp import ema_speeds
from thoughtgraph.agents.tools.registry import call_tool
from thoughtgraph.agents.tools.remoe import PlanInput

# -- Pisces ------------------------------------------------------------------------------------------


def test_pisces_weights_use_the_mean_of_the_last_five_staleness_values_as_the_reference():
    # shares 10/40 and 30/40; the second client's last five staleness values average (2+3+4+5+6)/5 = 4
    result = call_tool("pisces_aggregation_weights",
                       {"samples": [10, 30], "staleness": [0, [1, 2, 3, 4, 5, 6]], "renormalise": False})  # fmt: skip
    assert result["weights"] == pytest.approx([0.25, 0.75 / np.sqrt(5)])


def test_pisces_pace_bounds_staleness_where_plain_async_does_not_and_beats_sync_over_seeds():
    speedups, pisces_staleness, async_staleness = [], [], []
    for seed in range(10):
        result = call_tool("pisces_simulate", {"seed": seed, "staleness_bound": 4})
        times = result["time_to_target"]
        if times["pisces"] is not None and times["sync"] is not None:
            speedups.append(times["sync"] / times["pisces"])
        pisces_staleness.append(result["max_staleness"]["pisces"])
        async_staleness.append(result["max_staleness"]["async"])
    assert max(pisces_staleness) <= 4 + 1  # the bound, give or take the +-10% jitter of round times
    assert max(async_staleness) > 4 + 1  # FedBuff lets stragglers' updates grow stale (and drops them)
    assert len(speedups) >= 8 and np.median(speedups) > 1.5


# -- Calibre -----------------------------------------------------------------------------------------


def _tight_and_loose() -> np.ndarray:
    angles = 2 * np.pi * np.arange(95) / 95
    tight = [1.0, 0.0] + 0.1 * np.column_stack([np.cos(angles), np.sin(angles)])  # 95 points 0.1 from (1, 0)
    loose = np.array([[104, 100], [96, 100], [100, 104], [100, 96], [100, 100]], dtype=float)
    return np.vstack([tight, loose])


def test_calibre_divergence_averages_per_cluster_means_to_unit_centroids_as_the_reference():
    # the reference scales each k-means centroid to unit length: (1, 0) stays, (100, 100) becomes (1, 1)/sqrt(2);
    # the mean over clusters of each cluster's mean distance to its unit centroid
    unit = 1 / math.sqrt(2)
    loose = [(104, 100), (96, 100), (100, 104), (100, 96), (100, 100)]
    loose_mean = sum(math.hypot(x - unit, y - unit) for x, y in loose) / 5
    assert divergence_rate(_tight_and_loose(), 2, seed=0) == pytest.approx((0.1 + loose_mean) / 2)


def test_calibre_weights_scale_inverse_divergence_by_sample_share():
    # one cluster each: [[3, 0], [5, 0]] -> centroid (4, 0) -> (1, 0): distances 2, 4 -> 3.0;
    # [[1, 0], [1.2, 0]] -> (1.1, 0) -> (1, 0): distances 0, 0.2 -> 0.1
    result = call_tool("calibre_aggregation_weights",
                       {"client_encodings": [[[3, 0], [5, 0]], [[1, 0], [1.2, 0]]], "client_samples": [1, 1],
                        "clusters": 1})  # fmt: skip
    # 1/d normalised: (1/3) / (31/3) = 1/31 and 30/31; equal sample shares of 1/2, not renormalised
    assert result["divergence"] == pytest.approx([3.0, 0.1])
    assert result["weights"] == pytest.approx([1 / 62, 15 / 31])
    assert result["normalised_weights"] == pytest.approx([1 / 31, 30 / 31])


# -- VFL ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("bias", [False, True])
def test_vfl_attack_recovers_everything_unprotected_and_only_decoys_when_protected(seed, bias):
    base = {"samples": 64, "binary_features": 4, "bias": bias, "seed": seed}
    assert call_tool("vfl_reconstruction_attack", base)["true_columns_recovered"] == 4
    protected = call_tool("vfl_reconstruction_attack", {**base, "protection": True, "decoys": 2})
    assert protected["true_columns_recovered"] == 0 and protected["decoy_columns_recovered"] == 2


@pytest.mark.parametrize("seed", range(3))
def test_a_shift_alone_does_not_protect_once_the_layer_has_a_bias(seed):
    # the old protection (scale and shift, no noise): the bias absorbs the shift and all 4 columns fall
    shifted = call_tool("vfl_reconstruction_attack",
                        {"samples": 64, "bias": True, "protection": True, "noise": 0.0, "seed": seed})  # fmt: skip
    assert shifted["true_columns_recovered"] == 4


# -- Remoe -------------------------------------------------------------------------------------------


def test_idle_functions_are_not_billed():
    result = call_tool("remoe_place_experts", {"expert_seconds": [5, 4], "functions": 5})
    assert result["cost"] == 9 and result["makespan_seconds"] == 5 and result["assignment"] == [[0], [1]]
    lpt = call_tool("remoe_place_experts", {"expert_seconds": [5, 4, 3, 3], "functions": 2, "memory_gb": 2})
    assert lpt["makespan_seconds"] == 8 and lpt["cost"] == 2 * 15  # loads 5+3 and 4+3, billed 15 s at 2 GB


def test_plan_is_feasible_and_as_cheap_as_a_brute_force_search():
    arguments = {"expert_seconds": [8, 4, 2, 1], "expert_memory_gb": [1, 1, 0.5, 0.5], "memory_options_gb": [1, 2, 4],
                 "slo_seconds": 5, "max_functions": 4, "max_replicas": 3, "replica_overhead_seconds": 0.5}  # fmt: skip
    plan = call_tool("remoe_plan_experts", arguments)
    inputs = PlanInput(**arguments)
    best = np.inf
    for memory in inputs.memory_options_gb:  # every replica vector, placed by LPT
        speed = min(memory, inputs.full_speed_gb) / inputs.reference_gb
        for replicas in itertools.product(range(1, 4), repeat=4):
            durations = [s / speed / r + 0.5 for s, r in zip(inputs.expert_seconds, replicas, strict=True)
                         for _ in range(r)]  # fmt: skip
            loads = np.zeros(min(4, len(durations)))
            for d in sorted(durations, reverse=True):
                loads[np.argmin(loads)] += d
            if loads.max() <= 5:
                best = min(best, sum(durations) * memory)
    assert plan["feasible"] and plan["makespan_seconds"] <= 5
    assert plan["cost"] == pytest.approx(best)
    jobs = [job for function in plan["assignment"] for job in function]
    assert sorted(jobs) == sorted([e, r] for e, n in enumerate(plan["replicas"]) for r in range(n))


def test_plan_says_so_when_the_slo_cannot_be_met():
    plan = call_tool("remoe_plan_experts", {"expert_seconds": [100], "expert_memory_gb": [1],
                                            "memory_options_gb": [1, 2], "slo_seconds": 1})  # fmt: skip
    assert plan["feasible"] is False and plan["multiplier"] is None and plan["makespan_seconds"] > 1


# -- LB-BSP ------------------------------------------------------------------------------------------


def test_lbbsp_speed_predictor_is_the_ema_its_docstring_states():
    # speeds 10, 5, 2.5 with alpha 0.5: 10 -> 0.5*5 + 0.5*10 = 7.5 -> 0.5*2.5 + 0.5*7.5 = 5
    predicted = ema_speeds(np.array([[10.0, 10, 10], [10, 10, 10]]), np.array([[1.0, 2, 4], [2, 2, 2]]), 0.5)
    assert predicted == pytest.approx([5.0, 5.0])
    result = call_tool("lbbsp_batch_sizes", {"global_batch": 100, "batch_history": [[10, 10, 10], [10, 10, 10]],
                                             "time_history": [[1, 2, 4], [2, 2, 2]]})  # fmt: skip
    assert result["batch_sizes"] == [50, 50]


# -- Hear No Evil ------------------------------------------------------------------------------------


def test_benign_first_round_moving_zero_biases_is_not_flagged_but_a_large_rewrite_is():
    rng = np.random.default_rng(5)
    trusted = {"fc.weight": (0.1 * rng.standard_normal((10, 8))).tolist(), "fc.bias": [0.0] * 10,
               "out.weight": (0.1 * rng.standard_normal((3, 10))).tolist(), "out.bias": [0.0] * 3}  # fmt: skip
    benign = {**trusted, "fc.bias": [0.01] * 10, "out.bias": [0.01, -0.01, 0.0]}
    result = call_tool("check_received_model", {"trusted": trusted, "received": benign})
    assert not result["suspicious"], result["findings"]
    fishing = {**trusted, "fc.bias": [-50.0] * 10}
    result = call_tool("check_received_model", {"trusted": trusted, "received": fishing})
    assert any(f.startswith("fc.bias") and "extreme magnitude" in f for f in result["findings"])
    assert any(f.startswith("fc.bias") and "same value" in f for f in result["findings"])
