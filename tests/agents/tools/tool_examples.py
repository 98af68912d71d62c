"""One valid call per registered tool: the seeds the fuzz test mutates (a schema alone rarely yields a
valid call for tools whose arrays must agree in shape), and a check that each tool works as shown."""

from __future__ import annotations

import numpy as np

_rng = np.random.default_rng(0)
_mlp = {"hidden.weight": _rng.standard_normal((4, 3)).round(3).tolist(), "hidden.bias": [0.0, 0.1, -0.2, 0.3],
        "out.weight": _rng.standard_normal((2, 4)).round(3).tolist(), "out.bias": [0.0, 0.0]}  # fmt: skip

VALID_CALLS: dict[str, dict] = {
    "pisces_client_utility": {"clients": [{"losses": [1.0, 2.0], "recent_staleness": [0, 2]}, {"losses": [0.5]}]},
    "pisces_aggregation_weights": {"samples": [10, 30, 5], "staleness": [0, [1, 2, 3], 4], "renormalise": False},
    "pisces_simulate": {"clients": 8, "in_flight": 4, "min_updates": 2, "max_aggregations": 10, "seed": 1},
    "fedreview_simulate": {"clients": 6, "attackers": 2, "reviewers": 3, "rounds": 2},
    "check_received_model": {"trusted": _mlp, "received": _mlp, "probe": [[0.1, 0.2, 0.3], [1.0, -1.0, 0.5]]},
    "calibre_loss": {
        "view_one": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]],
        "view_two": [[0.9, 0.1], [0.1, 1.0], [1.0, 0.8]],
        "clusters": 2,
    },
    "calibre_aggregation_weights": {
        "client_encodings": [[[0.0, 0.0], [0.1, 0.0], [5.0, 5.0]], [[1.0, 1.0], [3.0, 0.0], [0.0, 2.0]]],
        "client_samples": [30, 10],
        "clusters": 2,
    },
    "vfl_reconstruction_attack": {"samples": 24, "binary_features": 3, "protection": True, "decoys": 1},
    "remoe_predict_experts": {
        "prompt": [1.0, 0.0],
        "history_prompts": [[1.0, 0.1], [0.0, 1.0]],
        "history_activations": [[1, 0, 0.5], [0, 1, 0]],
        "top_k": 2,
        "feature_similarity": [[1.0, 0.2], [0.2, 1.0]],
    },
    "remoe_preallocate_memory": {
        "model_gb": 2,
        "kv_gb_per_token": 0.001,
        "max_prompt_tokens": 100,
        "max_output_tokens": 50,
        "seconds_per_token_at_gb": [[2, 0.1], [4, 0.05]],
        "slo_seconds": 30,
    },
    "remoe_place_experts": {"expert_seconds": [5, 4, 3], "functions": 2, "memory_gb": 2},
    "remoe_plan_experts": {
        "expert_seconds": [8, 2, 1],
        "expert_memory_gb": [1, 1, 0.5],
        "memory_options_gb": [1, 2, 4],
        "slo_seconds": 6,
        "max_functions": 4,
    },
    "lbbsp_batch_sizes": {
        "global_batch": 96,
        "batch_history": [[32, 32], [32, 32]],
        "time_history": [[1.0, 1.2], [2.0, 2.2]],
    },
    "lbbsp_simulate": {"workers": 3, "iterations": 5},
    "nvfp4_quantize": {"values": [[0.5, -1.0, 3.0, 0.0], [2.0, 0.25, -6.0, 1.5]]},
    "nvfp4_hot_channels": {"channel_max_abs": [[1.0, 50.0, 1.2], [0.9, 60.0, 1.1], [1.1, 55.0, 30.0]]},
    "nvfp4_hot_channel_patch": {
        "activations": {"values": [[1.0, 40.0, 0.5], [0.2, 35.0, -0.7]]},
        "weights": {"values": [[0.5, -0.1], [0.05, 0.2], [1.0, 0.3]]},
        "hot_channels": [1],
    },
    "randomized_smoothing_certify": {
        "weights": [[1.0, 0.0], [-1.0, 0.0]],
        "bias": [0.0, 0.0],
        "x": [1.0, 0.0],
        "sigma": 0.5,
        "n0": 50,
        "n": 200,
    },
}
