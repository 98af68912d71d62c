"""Run time of each agent tool at a realistic size, so agents can budget their calls.

Usage: python bench/tools.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).parent.resolve():
    sys.path.pop(0)

import numpy as np

from thoughtgraph.agents.tools import get_tool


def timed(name: str, arguments: dict) -> float:
    started = time.perf_counter()
    get_tool(name).invoke(arguments)
    return round(time.perf_counter() - started, 3)


def main() -> dict:
    rng = np.random.default_rng(0)
    folder = Path(tempfile.mkdtemp())
    big = rng.standard_normal((4096, 4096)).astype(np.float32)
    np.save(folder / "big.npy", big)
    layer = {"w": rng.standard_normal((1024, 1024)), "b": rng.standard_normal(1024)}
    np.savez(folder / "trusted.npz", **layer)
    np.savez(folder / "received.npz", **{k: v + 0.01 for k, v in layer.items()})
    stats = np.abs(rng.standard_normal((200, 4096)))
    seconds = {
        "pisces_simulate (100 clients, up to 300 aggregations)": timed(
            "pisces_simulate", {"clients": 100, "in_flight": 20, "max_aggregations": 300, "target_accuracy": 0.99}
        ),
        "fedreview_simulate (50 clients, 10 rounds)": timed(
            "fedreview_simulate", {"clients": 50, "attackers": 10, "reviewers": 9, "rounds": 10}
        ),
        "nvfp4_quantize (4096 x 4096)": timed("nvfp4_quantize", {"path": str(folder / "big.npy")}),
        "nvfp4_hot_channels (200 steps x 4096 channels)": timed(
            "nvfp4_hot_channels", {"channel_max_abs": stats.tolist()}
        ),
        "check_received_model (1024 x 1024 layer)": timed(
            "check_received_model",
            {"trusted_path": str(folder / "trusted.npz"), "received_path": str(folder / "received.npz")},
        ),
        "lbbsp_simulate (64 workers, 1000 iterations)": timed("lbbsp_simulate", {"workers": 64, "iterations": 1000}),
        "vfl_reconstruction_attack (1000 samples, 10 features)": timed(
            "vfl_reconstruction_attack", {"samples": 1000, "binary_features": 10, "output_width": 16}
        ),
        "remoe_place_experts (256 experts, 16 functions)": timed(
            "remoe_place_experts", {"expert_seconds": rng.uniform(1, 10, 256).tolist(), "functions": 16}
        ),
        "randomized_smoothing_certify (n = 100000, 256 features)": timed(
            "randomized_smoothing_certify",
            {
                "weights": rng.standard_normal((10, 256)).tolist(),
                "bias": [0.0] * 10,
                "x": [0.0] * 256,
                "sigma": 0.25,
                "n": 100_000,
            },
        ),
        "calibre_aggregation_weights (10 clients x 500 encodings)": timed(
            "calibre_aggregation_weights",
            {"client_encodings": [rng.standard_normal((500, 32)).tolist() for _ in range(10)], "clusters": 8},
        ),
    }
    return seconds


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
