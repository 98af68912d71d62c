"""Tools on real files: arrays from .npy/.npz/.safetensors/.json/.csv, PyTorch checkpoints with norm layers
(saved as safetensors), and randomized smoothing of PyTorch classifiers (a state dict through the tool, a
TorchScript module from Python: the tool never loads code)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file as save_torch

from thoughtgraph.agents.tools.model_check import forward, load_state, sequential_layers
from thoughtgraph.agents.tools.registry import ToolError, call_tool
from thoughtgraph.agents.tools.smoothing import certify

MATRIX = np.array([[0.5, -1.0, 3.0, 0.0], [2.0, 0.25, -6.0, 1.5]])


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".safetensors", ".json", ".csv"])
def test_array_inputs_read_every_tensor_format(tmp_path, suffix):
    path = tmp_path / f"x{suffix}"
    if suffix == ".npy":
        np.save(path, MATRIX)
    elif suffix == ".npz":
        np.savez(path, x=MATRIX)
    elif suffix == ".safetensors":
        save_numpy({"x": MATRIX}, str(path))
    elif suffix == ".json":
        path.write_text(json.dumps({"x": MATRIX.tolist()}))
    else:
        path.write_text("a,b,c,d\n" + "\n".join(",".join(str(v) for v in row) for row in MATRIX))
    inline = call_tool("nvfp4_quantize", {"values": MATRIX.tolist()})
    assert call_tool("nvfp4_quantize", {"path": str(path)}) == inline


def test_a_file_with_several_tensors_needs_a_name_and_reads_the_named_one(tmp_path):
    save_numpy({"a": MATRIX, "b": MATRIX * 2}, str(tmp_path / "two.safetensors"))
    with pytest.raises(ToolError, match=r"holds 2 tensors; pick one with two\.safetensors#NAME"):
        call_tool("nvfp4_quantize", {"path": str(tmp_path / "two.safetensors")})
    doubled = call_tool("nvfp4_quantize", {"path": f"{tmp_path / 'two.safetensors'}#b"})
    assert doubled["tensor_scale"] == pytest.approx(2 * call_tool("nvfp4_quantize", {"values": MATRIX.tolist()})[
        "tensor_scale"])  # fmt: skip


def test_files_that_would_run_code_or_are_not_tensors_are_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("pickle code ran",))

    torch.save({"x": Payload()}, tmp_path / "evil.pt")
    torch.save({"x": torch.tensor(MATRIX)}, tmp_path / "plain.pt")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "notes.txt").write_text("hello")
    for path, message in [
        ("evil.pt", "can run code when loaded"),
        ("plain.pt", "save the tensors as .safetensors"),
        ("objects.npy", "cannot read"),
        ("notes.txt", "is not one of"),
    ]:
        with pytest.raises(ToolError, match=message):
            call_tool("nvfp4_quantize", {"path": str(tmp_path / path)})


def save_state(state: dict, path) -> None:
    save_torch({k: v.contiguous() for k, v in state.items()}, str(path))


def classifier_with_norms(seed: int) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                                torch.nn.Linear(16, 16), torch.nn.LayerNorm(16), torch.nn.ReLU(),
                                torch.nn.Linear(16, 4))  # fmt: skip
    model.train()
    model(torch.randn(64, 6))  # running statistics and num_batches_tracked move
    return model.eval()


def test_the_probe_runs_a_real_pytorch_model_with_norm_layers_exactly():
    model = classifier_with_norms(0)
    state = {k: v.double().numpy() for k, v in model.state_dict().items()}
    batch = torch.randn(32, 6)
    ours = forward(state, sequential_layers(state), batch.double().numpy())
    assert np.allclose(ours, model(batch).detach().numpy(), atol=1e-5)


def test_real_checkpoints_benign_round_passes_and_a_class_rewrite_is_caught(tmp_path):
    model = classifier_with_norms(1)
    save_state(model.state_dict(), tmp_path / "trusted.safetensors")
    with torch.no_grad():  # a benign local round: small moves everywhere, statistics and counter updated
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    model.train()
    model(torch.randn(64, 6))
    model.eval()
    save_torch({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "benign.safetensors"))
    probe = torch.randn(50, 6).tolist()
    benign = call_tool("check_received_model", {"trusted_path": str(tmp_path / "trusted.safetensors"),
                                                "received_path": str(tmp_path / "benign.safetensors"),
                                                "probe": probe})  # fmt: skip
    assert not benign["suspicious"], benign["findings"]
    assert benign["probe"].startswith("ran on 50 inputs")
    fishing = {k: v.clone() for k, v in model.state_dict().items()}
    fishing["6.weight"][[0, 1, 3]] = 0.0
    fishing["6.bias"][:] = torch.tensor([-100.0, -100.0, 100.0, -100.0])
    save_state(fishing, tmp_path / "fishing.safetensors")
    result = call_tool(
        "check_received_model",
        {
            "trusted_path": str(tmp_path / "trusted.safetensors"),
            "received_path": str(tmp_path / "fishing.safetensors"),
            "probe": probe,
        },
    )
    assert any(f.startswith("6.weight") and "zeros" in f for f in result["findings"])
    assert any("every local input now maps to class 2" in f for f in result["findings"])


def test_convolutional_checkpoints_are_checked_and_the_probe_says_why_it_skipped(tmp_path):
    torch.manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 6 * 6, 3))  # fmt: skip
    save_state(net.state_dict(), tmp_path / "trusted.safetensors")
    changed = {k: v.clone() for k, v in net.state_dict().items()}
    changed["0.weight"][2] = 0.0  # one filter zeroed
    save_state(changed, tmp_path / "received.safetensors")
    result = call_tool("check_received_model", {"trusted_path": str(tmp_path / "trusted.safetensors"),
                                                "received_path": str(tmp_path / "received.safetensors"),
                                                "probe": [[0.0] * 64]})  # fmt: skip
    assert "0.weight: 1 new rows of exact zeros" in result["findings"]
    assert result["probe"].startswith("skipped: 0.weight has shape (4, 1, 3, 3)")
    assert "1.num_batches_tracked" not in result["relative_change"]
    assert set(load_state(None, str(tmp_path / "trusted.safetensors"), "t")) == set(net.state_dict())


def sign_classifier() -> torch.nn.Sequential:
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        model[0].bias.zero_()
    return model


def test_smoothing_certifies_pytorch_models_like_the_equivalent_linear_model(tmp_path):
    # class 0 iff x0 + noise > 0: at x = (1, 0), sigma 0.5, p = Phi(2) = 0.977, so the Clopper-Pearson bound
    # on 10,000 samples (alpha 0.001) sits near 0.973 and the radius near 0.5 * Phi^-1(0.973) = 0.96
    model = sign_classifier()
    save_state(model.state_dict(), tmp_path / "sign.safetensors")
    common = {"x": [1.0, 0.0], "sigma": 0.5, "n": 10_000, "batch_size": 3000}
    linear = call_tool("randomized_smoothing_certify", {**common, "weights": [[1.0, 0.0], [-1.0, 0.0]],
                                                        "bias": [0.0, 0.0]})  # fmt: skip
    state = call_tool("randomized_smoothing_certify", {**common, "model_path": str(tmp_path / "sign.safetensors"),
                                                       "architecture": "mlp"})  # fmt: skip
    assert linear["predicted_class"] == state["predicted_class"] == 0
    assert linear["radius"] == pytest.approx(0.96, abs=0.02)
    assert state["radius"] == pytest.approx(linear["radius"])


def test_a_torchscript_cnn_is_certified_from_python_and_the_tool_refuses_to_load_it(tmp_path):
    torch.manual_seed(3)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()  # fmt: skip
    scripted = torch.jit.script(cnn)
    torch.jit.save(scripted, tmp_path / "cnn.pt")
    x = torch.randn(1, 1, 8, 8)
    clean_class = int(cnn(x).argmax())

    def classify(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return scripted(torch.from_numpy(batch.reshape(len(batch), 1, 8, 8)).float()).argmax(dim=1).numpy()

    label, radius = certify(classify, x.flatten().double().numpy(), 1e-4, 100, 2000, 0.001, 0)
    assert label == clean_class and radius > 0
    common = {"x": x.flatten().tolist(), "input_shape": [1, 8, 8], "n": 2000, "sigma": 1e-4}
    for architecture in ("torchscript", "mlp"):
        with pytest.raises(ToolError, match=r"architecture|can run code when loaded"):
            call_tool("randomized_smoothing_certify",
                      {**common, "model_path": str(tmp_path / "cnn.pt"), "architecture": architecture})  # fmt: skip


def test_every_array_argument_also_takes_a_tensor_file(tmp_path):
    def saved(name: str, values) -> str:
        np.save(tmp_path / f"{name}.npy", np.asarray(values, dtype=float))
        return str(tmp_path / f"{name}.npy")

    cases = {
        "nvfp4_hot_channels": {"channel_max_abs": [[1.0, 50.0, 1.2], [0.9, 60.0, 1.1], [1.1, 55.0, 30.0]]},
        "calibre_loss": {"view_one": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]],
                         "view_two": [[0.9, 0.1], [0.1, 1.0], [1, 0.8]],
                         "clusters": 2},
        "remoe_predict_experts": {"prompt": [1.0, 0.0], "history_prompts": [[1.0, 0.1], [0.0, 1.0]],
                                  "history_activations": [[1, 0, 0.5], [0, 1, 0]], "top_k": 2},
        "lbbsp_batch_sizes": {"global_batch": 96, "batch_history": [[32, 32], [32, 32]],
                              "time_history": [[1.0, 1.2], [2.0, 2.2]]},
        "randomized_smoothing_certify": {"weights": [[1.0, 0.0], [-1.0, 0.0]], "bias": [0.0, 0.0], "x": [1.0, 0.0],
                                         "sigma": 0.5, "n0": 50, "n": 200},
    }  # fmt: skip
    array_fields = {"channel_max_abs", "view_one", "view_two", "prompt", "history_prompts", "history_activations",
                    "batch_history", "time_history", "x"}  # fmt: skip
    for name, inline in cases.items():
        from_files = {k: saved(f"{name}-{k}", v) if k in array_fields else v for k, v in inline.items()}
        assert call_tool(name, from_files) == call_tool(name, inline), name
    encodings = [[[0.0, 0.0], [0.1, 0.0], [5.0, 5.0]], [[1.0, 1.0], [3.0, 0.0], [0.0, 2.0]]]
    files = [saved(f"client{i}", e) for i, e in enumerate(encodings)]
    assert call_tool("calibre_aggregation_weights", {"client_encodings": files, "clusters": 2}) == call_tool(
        "calibre_aggregation_weights", {"client_encodings": encodings, "clusters": 2}
    )
