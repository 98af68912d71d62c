"""Tool formulas against the reference code, with values worked out by hand from the reference's own formula
(TL-System/plato's Pisces client, aggregation strategy and MNIST config; its Calibre clustering; NVFP4's E2M1
rounding as hardware rounds)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from thoughtgraph.agents.tools.calibre import divergence_rate
from thoughtgraph.agents.tools.nvfp4 import round_e2m1
from thoughtgraph.agents.tools.registry import call_tool


def test_pisces_utility_by_the_papers_formula_and_by_platos():
    # A: 100 samples at loss 1; B: 1 sample at loss 200
    clients = [{"losses": [1.0] * 100}, {"losses": [200.0]}]
    paper = call_tool("pisces_client_utility", {"clients": clients, "beta": 0.5})
    assert paper["utilities"] == pytest.approx([100.0, 200.0]) and paper["ranking"] == [1, 0]  # |B| sqrt(mean l^2)
    # Plato: one batch loss each, EMA from 0 with decay 0.01: m = 0.01 * loss; n sqrt(sqrt(m) / n)
    plato_clients = [{"losses": [1.0], "samples": 100}, {"losses": [200.0], "samples": 1}]
    plato = call_tool("pisces_client_utility", {"clients": plato_clients, "beta": 0.5, "formula": "plato"})
    expected = [100 * math.sqrt(math.sqrt(0.01) / 100), 1 * math.sqrt(math.sqrt(2.0) / 1)]
    assert plato["utilities"] == pytest.approx(expected, abs=1e-6) and plato["ranking"] == [0, 1]
    assert expected == pytest.approx([3.1623, 1.1892], abs=1e-4)


def test_pisces_utility_by_platos_current_client():
    # Plato's client after its strategy refactor: q = EMA of squared batch losses seeded with the first
    # (decay 0.01), utility n sqrt(q). Batch losses [2, 4] over 10 samples: q = 4, then 0.99 * 4 + 0.01 * 16 =
    # 4.12; 10 * sqrt(4.12) = 20.2978. One batch each at losses 1 and 200: 100 * 1 and 1 * 200, ranked as the paper.
    clients = [
        {"losses": [2.0, 4.0], "samples": 10}, {"losses": [1.0], "samples": 100}, {"losses": [200.0], "samples": 1}
    ]  # fmt: skip
    current = call_tool("pisces_client_utility", {"clients": clients, "beta": 0.5, "formula": "plato_current"})
    assert current["utilities"] == pytest.approx([20.2978, 100.0, 200.0], abs=1e-4)
    assert current["ranking"] == [2, 1, 0]
    huge = call_tool("pisces_client_utility", {"clients": [{"losses": [1e100, 1e100], "samples": 2}],
                                               "formula": "plato_current"})  # fmt: skip
    assert huge["utilities"] == pytest.approx([2e100])


def test_pisces_aggregation_defaults_to_the_references_unnormalised_weights():
    inputs = {"samples": [10, 30], "staleness": [0, 3], "beta": 1.0}
    weights = call_tool("pisces_aggregation_weights", inputs)["weights"]
    assert weights == pytest.approx([10 / 40, 30 / 40 / 4])  # [0.25, 0.1875]
    renormalised = call_tool("pisces_aggregation_weights", {**inputs, "renormalise": True})["weights"]
    assert renormalised == pytest.approx([0.25 / 0.4375, 0.1875 / 0.4375])  # [0.5714, 0.4286]


def test_calibre_divergence_measures_distances_to_unit_length_centroids():
    # one cluster each: centroid [4, 0] -> [1, 0]: distances 2 and 4; centroid [1.1, 0] -> [1, 0]: 0 and 0.2
    assert divergence_rate(np.array([[3.0, 0.0], [5.0, 0.0]]), 1, 0) == pytest.approx(3.0)
    assert divergence_rate(np.array([[1.0, 0.0], [1.2, 0.0]]), 1, 0) == pytest.approx(0.1)


def test_e2m1_ties_round_to_even_as_hardware_does():
    ties = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -0.75, -3.5])
    assert round_e2m1(ties).tolist() == [0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, -1.0, -4.0]
    near = np.array([0.74, 0.76, 1.74, 3.49, 3.51, 7.0])
    assert round_e2m1(near).tolist() == [0.5, 1.0, 1.5, 3.0, 4.0, 6.0]


def test_vfl_attack_reports_precision_and_what_an_attacker_without_ground_truth_keeps():
    # With a bias the span of [Z] is span(X, 1): its binary vectors are the d columns x_j, their complements
    # 1 - x_j and the all-ones column (random rows make sums such as x_i + x_j non-binary): 2d + 1 = 9 for d = 4,
    # so recall is 4/4 but precision 4/9. The attacker drops the constant column and keeps one of each
    # complement pair: 4 columns, each a true feature up to swapped labels.
    base = {"samples": 40, "binary_features": 4, "seed": 2, "output_width": 8}
    biased = call_tool("vfl_reconstruction_attack", {**base, "bias": True})
    assert (biased["candidates"], biased["true_columns_recovered"]) == (9, 4)
    assert biased["precision"] == pytest.approx(4 / 9)
    assert (biased["attacker_pick"], biased["attacker_pick_true"]) == (4, 4)
    # without a bias only the d columns themselves are binary in the span: precision 1
    plain = call_tool("vfl_reconstruction_attack", {**base, "bias": False})
    assert (plain["candidates"], plain["precision"], plain["attacker_pick"]) == (4, 1.0, 4)
    # protected (2 decoys, bias): decoys, their complements and the ones column; the pick is the 2 decoys
    protected = call_tool("vfl_reconstruction_attack", {**base, "bias": True, "protection": True, "decoys": 2})
    assert (protected["candidates"], protected["attacker_pick"], protected["attacker_pick_true"]) == (5, 2, 0)
