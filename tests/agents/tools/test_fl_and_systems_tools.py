import itertools
import json

import numpy as np
import pytest

from thoughtgraph.agents.tools import get_tool, list_tools
from thoughtgraph.agents.tools.calibre import divergence_rate, kmeans
from thoughtgraph.agents.tools.pisces import aggregation_weights, staleness_factor, statistical_utility
from thoughtgraph.agents.tools.remoe import lpt_schedule, soft_cosine
from thoughtgraph.agents.tools.vfl import search_attack

# -- Pisces ------------------------------------------------------------------------------------------


def test_pisces_utilities_match_a_hand_built_table():
    clients = [
        {"losses": [1.0, 1.0, 1.0, 1.0], "recent_staleness": [0, 0]},  # 4 * 1 * 1 = 4
        {"losses": [3.0, 4.0], "recent_staleness": [3, 3]},  # 2 * sqrt(12.5) / 2 = 3.5355
        {"losses": [2.0, 2.0], "recent_staleness": []},  # 2 * 2 = 4
    ]
    result = get_tool("pisces_client_utility").invoke({"clients": clients, "beta": 0.5})
    assert result["utilities"] == pytest.approx([4.0, 2 * np.sqrt(12.5) / 2, 4.0], abs=1e-6)
    assert result["ranking"] == [0, 2, 1]
    assert statistical_utility(np.array([])) == 0.0


def test_stale_updates_get_lower_weight_with_and_without_renormalisation():
    weights = aggregation_weights(np.array([10.0, 10.0]), np.array([0.0, 3.0]), 0.5, renormalise=False)
    assert weights[0] == pytest.approx(0.5) and weights[1] == pytest.approx(0.5 / 2)
    renormalised = get_tool("pisces_aggregation_weights").invoke(
        {"samples": [10, 10], "staleness": [0, 3], "renormalise": True}
    )
    assert (
        sum(renormalised["weights"]) == pytest.approx(1.0) and renormalised["weights"][0] > renormalised["weights"][1]
    )
    assert staleness_factor(np.array([3.0, 3.0]), 0.5) == pytest.approx(0.5)


def test_pisces_reaches_the_target_before_synchronous_fedavg_with_stragglers():
    result = get_tool("pisces_simulate").invoke({"seed": 1})
    times = result["time_to_target"]
    assert times["pisces"] is not None and times["sync"] is not None
    assert times["pisces"] < times["sync"]


# -- FedReview ---------------------------------------------------------------------------------------


def test_fedreview_rejects_sign_flippers_and_keeps_accuracy_while_fedavg_collapses():
    result = get_tool("fedreview_simulate").invoke({"clients": 10, "attackers": 3, "attack": "sign_flip"})
    accuracy = result["accuracy"]
    assert result["rejected_poisoned"] >= 0.8 and result["rejected_benign"] <= 0.2
    assert accuracy["fedreview"] >= accuracy["clean"] - 0.05
    assert accuracy["fedavg"] < accuracy["clean"] - 0.3


def test_fedreview_under_scaling_attack_runs_and_compares_every_aggregator():
    result = get_tool("fedreview_simulate").invoke({"attack": "scaling", "attack_scale": 20, "rounds": 5})
    assert set(result["accuracy"]) == {"fedavg", "median", "trimmed_mean", "krum", "fedreview", "clean"}


# -- malicious-model detection -----------------------------------------------------------------------


def mlp(rng):
    return {"hidden.weight": rng.standard_normal((8, 6)), "hidden.bias": rng.standard_normal(8),
            "out.weight": rng.standard_normal((4, 8)), "out.bias": rng.standard_normal(4)}  # fmt: skip


def as_json(state):
    return {k: v.tolist() for k, v in state.items()}


def test_benign_drift_is_not_flagged():
    rng = np.random.default_rng(0)
    trusted = mlp(rng)
    drifted = {k: v + 0.05 * rng.standard_normal(v.shape) for k, v in trusted.items()}
    result = get_tool("check_received_model").invoke({"trusted": as_json(trusted), "received": as_json(drifted)})
    assert not result["suspicious"], result["findings"]


def test_class_targeted_last_layer_rewrite_is_flagged_naming_the_layer():
    rng = np.random.default_rng(1)
    trusted = mlp(rng)
    fishing = {k: v.copy() for k, v in trusted.items()}
    fishing["out.weight"][[0, 1, 3]] = 0.0  # only class 2 keeps its weights
    result = get_tool("check_received_model").invoke({"trusted": as_json(trusted), "received": as_json(fishing)})
    assert result["suspicious"]
    assert any(f.startswith("out.weight") and "zeros" in f for f in result["findings"])


def test_constant_bias_rewrite_is_flagged_naming_the_layer():
    rng = np.random.default_rng(2)
    trusted = mlp(rng)
    fishing = {k: v.copy() for k, v in trusted.items()}
    fishing["hidden.bias"][:] = -1e4
    result = get_tool("check_received_model").invoke({"trusted": as_json(trusted), "received": as_json(fishing)})
    assert any(f.startswith("hidden.bias") and "same value" in f for f in result["findings"])
    assert any(f.startswith("hidden.bias") and "extreme magnitude" in f for f in result["findings"])


def test_missing_layers_and_shape_changes_are_named(tmp_path):
    rng = np.random.default_rng(3)
    trusted = mlp(rng)
    changed = {k: v for k, v in trusted.items() if k != "out.bias"}
    changed["hidden.weight"] = rng.standard_normal((9, 6))
    np.savez(tmp_path / "t.npz", **trusted)
    np.savez(tmp_path / "r.npz", **changed)
    result = get_tool("check_received_model").invoke(
        {"trusted_path": str(tmp_path / "t.npz"), "received_path": str(tmp_path / "r.npz")}
    )
    assert any("missing ['out.bias']" in f for f in result["findings"])
    assert any("hidden.weight: shape changed" in f for f in result["findings"])


# -- Calibre -----------------------------------------------------------------------------------------


def test_calibre_divergence_and_weights():
    rng = np.random.default_rng(4)
    centres = np.array([[0.0, 0.0], [10.0, 10.0]])
    tight = np.vstack([c + 0.1 * rng.standard_normal((20, 2)) for c in centres])
    loose = np.vstack([c + 2.0 * rng.standard_normal((20, 2)) for c in centres])
    _, labels = kmeans(tight, 2, seed=0)
    assert len(set(labels[:20])) == 1 and labels[0] != labels[-1]
    assert divergence_rate(tight, 2, 0) < divergence_rate(loose, 2, 0)
    result = get_tool("calibre_aggregation_weights").invoke(
        {"client_encodings": [tight.tolist(), loose.tolist()], "clusters": 2}
    )
    assert sum(result["normalised_weights"]) == pytest.approx(1.0)
    inverse = [1 / d for d in result["divergence"]]  # equal sample counts: weights are half of 1/d normalised
    assert result["weights"][0] == pytest.approx(0.5 * inverse[0] / sum(inverse), rel=1e-6)


def test_calibre_loss_parts():
    rng = np.random.default_rng(5)
    z = rng.standard_normal((16, 8))
    aligned = get_tool("calibre_loss").invoke({"view_one": z.tolist(), "view_two": (z + 0.01).tolist()})
    shuffled = get_tool("calibre_loss").invoke({"view_one": z.tolist(), "view_two": z[::-1].tolist()})
    assert aligned["contrastive"] < shuffled["contrastive"]
    assert aligned["total"] == pytest.approx(
        aligned["contrastive"] + aligned["prototype_contrastive"] + aligned["prototype_classification"]
    )


# -- VFL ---------------------------------------------------------------------------------------------


def test_vfl_attack_recovers_binary_columns_exactly_and_protection_diverts_it_to_decoys():
    unprotected = get_tool("vfl_reconstruction_attack").invoke({"samples": 40, "binary_features": 4, "seed": 2})
    assert unprotected["recovered_fraction"] == 1.0
    protected = get_tool("vfl_reconstruction_attack").invoke(
        {"samples": 40, "binary_features": 4, "seed": 2, "protection": True, "decoys": 2}
    )
    assert protected["true_columns_recovered"] == 0 and protected["decoy_columns_recovered"] == 2


def test_search_attack_on_a_hand_built_instance():
    x = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0]], dtype=float)
    z = x @ np.array([[2.0, -1.0, 0.5], [1.0, 3.0, -2.0]])
    found = {tuple(c) for c in search_attack(z).T}
    assert {tuple(x[:, 0]), tuple(x[:, 1])} <= found


# -- Remoe -------------------------------------------------------------------------------------------


def test_soft_cosine_of_a_vector_with_itself_is_one():
    v = np.array([0.3, -1.2, 2.0])
    similarity = np.array([[1.0, 0.2, 0.0], [0.2, 1.0, 0.1], [0.0, 0.1, 1.0]])
    assert soft_cosine(v, v, similarity) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(6))
def test_lpt_makespan_is_within_four_thirds_of_the_brute_forced_optimum(seed):
    durations = np.random.default_rng(seed).uniform(1, 10, 7)
    _, makespan = lpt_schedule(durations, 3)
    optimum = min(
        max(durations[[j for j in range(7) if assignment[j] == m]].sum() for m in range(3))
        for assignment in itertools.product(range(3), repeat=7)
    )
    assert optimum <= makespan <= 4 / 3 * optimum + 1e-9


def test_remoe_prediction_memory_and_placement_tools():
    prediction = get_tool("remoe_predict_experts").invoke(
        {"prompt": [1.0, 0.0], "history_prompts": [[1.0, 0.1], [0.0, 1.0], [0.9, 0.0]],
         "history_activations": [[1, 0, 0], [0, 0, 1], [0, 1, 0]], "top_k": 2}
    )  # fmt: skip
    assert sorted(prediction["neighbours"]) == [0, 2] and prediction["expert_probabilities"][2] == 0
    memory = get_tool("remoe_preallocate_memory").invoke(
        {"model_gb": 2, "kv_gb_per_token": 0.001, "max_prompt_tokens": 1000, "max_output_tokens": 500,
         "seconds_per_token_at_gb": [[2, 0.1], [4, 0.05], [8, 0.02]], "slo_seconds": 30}
    )  # fmt: skip
    assert memory == {"memory_gb": 4.0, "worst_case_latency_seconds": 25.0, "feasible": True}
    placement = get_tool("remoe_place_experts").invoke({"expert_seconds": [5, 4, 3, 3], "functions": 2})
    assert placement["makespan_seconds"] == 8 and placement["cost"] == 15  # busy seconds 8 + 7, not 2 x 8


# -- every tool rejects nonsense, through the registry as an agent calls it --------------------------

BAD_CALLS = {
    "pisces_client_utility": {"clients": []},
    "pisces_aggregation_weights": {"samples": [1, 2], "staleness": [0]},
    "pisces_simulate": {"in_flight": 50},
    "fedreview_simulate": {"clients": 10, "attackers": 6},
    "check_received_model": {"trusted": {"w": [[float("nan")]]}, "received": {"w": [[1.0]]}},
    "calibre_loss": {"view_one": [[1.0, 2.0]], "view_two": [[1.0]]},
    "calibre_aggregation_weights": {"client_encodings": []},
    "vfl_reconstruction_attack": {"samples": -3},
    "remoe_predict_experts": {"prompt": [1.0], "history_prompts": [[1.0, 2.0]], "history_activations": [[1]]},
    "remoe_preallocate_memory": {"model_gb": -1, "kv_gb_per_token": 1, "max_prompt_tokens": 1,
                                 "max_output_tokens": 1, "seconds_per_token_at_gb": [[1, 1]], "slo_seconds": 1},
    "remoe_place_experts": {"expert_seconds": [], "functions": 2},
    "lbbsp_simulate": {"workers": 0},
    "nvfp4_hot_channel_patch": {"activations": {"values": [[1.0]]}, "weights": {"values": [[1.0]]},
                                "hot_channels": [-1]},
}  # fmt: skip


@pytest.mark.parametrize(("name", "arguments"), list(BAD_CALLS.items()))
def test_every_tool_rejects_bad_input_with_a_validation_error(name, arguments):
    message = get_tool(name).invoke(arguments)
    assert isinstance(message, str) and message.startswith(f"tool error: {name}: ") and "internal" not in message


def test_every_registered_tool_has_a_bad_input_case_and_a_json_schema():
    covered_in_other_file = {
        "lbbsp_batch_sizes",
        "nvfp4_quantize",
        "nvfp4_hot_channels",
        "randomized_smoothing_certify",
    }
    BAD_CALLS.setdefault("remoe_plan_experts", {"expert_seconds": [1], "expert_memory_gb": [1, 2],
                                                "memory_options_gb": [1], "slo_seconds": 1})  # fmt: skip
    assert set(list_tools()) == set(BAD_CALLS) | covered_in_other_file
    for name in list_tools():
        schema = get_tool(name).args_schema
        json.dumps(schema)
