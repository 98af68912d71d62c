"""Incidents come from other people. Paths inside an incident's artifacts may not reach files outside its
attachments folder (absolute paths, ``..``, symbolic links), files that run code when loaded are never
loaded, and whether a check needs a person's approval is decided by the check's code, not by a knowledge
base file."""

from __future__ import annotations

import asyncio
import json
import os

import numpy as np
import pytest
import torch

from thoughtgraph.agents.diagnosis.api import stream_diagnosis
from thoughtgraph.agents.diagnosis.checks import CHECKS, run_check
from thoughtgraph.agents.diagnosis.graph import _runnable, bind, needs_approval
from thoughtgraph.agents.diagnosis.incidents import HISTORY, load_incidents
from thoughtgraph.agents.diagnosis.knowledge import KnowledgeBase, mine
from thoughtgraph.agents.tools.arrays import attachments_root
from thoughtgraph.agents.tools.registry import ToolError, call_tool

STATS = [[1.0, 50.0, 1.2], [0.9, 60.0, 1.1], [1.1, 55.0, 30.0]]


@pytest.fixture
def folders(tmp_path):
    """An incident folder with its own tensor file, and a secret file beside it that the incident names."""
    incident, outside = tmp_path / "incident", tmp_path / "home"
    incident.mkdir()
    outside.mkdir()
    np.save(incident / "stats.npy", np.asarray(STATS))
    np.save(outside / "secret.npy", np.asarray(STATS) * 7)
    (incident / "link.npy").symlink_to(outside / "secret.npy")
    (incident / "sub").mkdir()
    (incident / "sub" / "up.npy").symlink_to("../../home/secret.npy")
    return incident, outside


def step_events(report: str, **options) -> list[dict]:
    """The verification steps a whole diagnosis ran (no model: tools and retrieval)."""

    async def run() -> list[dict]:
        return [e async for e in stream_diagnosis(report, backend=None, **options) if e["kind"] == "step"]

    return asyncio.run(run())


def hot_channels(path: str, folder) -> tuple[str | None, str]:
    artifacts = {"stats.json": json.dumps({"channel_max_abs": path})}
    result, _ = run_check("hot_channels", {"artifact": "stats.json"}, artifacts, str(folder))
    return result.error, result.summary


def test_paths_inside_an_incident_cannot_leave_its_folder(folders):
    incident, outside = folders
    assert hot_channels("stats.npy", incident)[0] is None  # its own file: read
    assert hot_channels(str(incident / "stats.npy"), incident)[0] is None  # absolute, but inside
    for path in (str(outside / "secret.npy"), "../home/secret.npy", "link.npy", "sub/up.npy", "/etc/hostname.npy"):
        error, summary = hot_channels(path, incident)
        assert error is not None and ("outside the attachments folder" in error or "no file at" in error), path
        assert summary.startswith("check error")  # the check read nothing, so it reports no channels


def test_a_full_diagnosis_reads_no_file_outside_the_attachments_folder(folders):
    incident, outside = folders
    report = "Loss spikes after switching to NVFP4; some activation channels look hot."
    artifacts = {"activation_stats.json": json.dumps({"channel_max_abs": str(outside / "secret.npy")})}
    events = step_events(report, workload={"kind": "training"}, artifacts=artifacts, attachments_dir=incident)
    steps = [o for o in events if o["check"] == "hot_channels"]
    assert steps and all("outside the attachments folder" in (o["error"] or "") for o in steps)


def test_pickles_and_torchscript_are_never_loaded(folders, tmp_path):
    incident, _ = folders
    canary = tmp_path / "canary"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {canary}",))

    torch.save({"x": Payload()}, incident / "model.pt")
    torch.save({"x": Payload()}, incident / "model.bin")
    torch.jit.save(torch.jit.script(torch.nn.Linear(3, 2)), incident / "model.ts")
    with attachments_root(incident):
        for name in ("model.pt", "model.bin", "model.ts"):
            with pytest.raises(ToolError, match="can run code when loaded"):
                call_tool("nvfp4_hot_channels", {"channel_max_abs": name})
            with pytest.raises(ToolError, match=r"can run code when loaded|architecture"):
                call_tool("randomized_smoothing_certify", {"model_path": name, "architecture": "mlp", "x": [1, 2, 3],
                                                           "sigma": 0.5})  # fmt: skip
    assert not canary.exists()


def tampered_kb(tmp_path) -> KnowledgeBase:
    """The shipped history mined, then its file edited to call the state-changing check read-only."""
    history, _ = load_incidents(HISTORY)
    folder = tmp_path / "kb"
    mine(history).save(folder)
    data = json.loads((folder / "kb.json").read_text())
    tampered = 0
    for steps in [*data["steps"].values(), *(e["steps"] for e in data["entries"])]:
        for step in steps:
            if step["check"] == "quarantine_clients":
                step["read_only"], tampered = True, tampered + 1
    assert tampered
    (folder / "kb.json").write_text(json.dumps(data))
    return KnowledgeBase.load(folder)


def test_a_knowledge_base_cannot_mark_a_state_changing_check_read_only(tmp_path):
    assert CHECKS["quarantine_clients"].read_only is False  # declared with the code
    kb = tampered_kb(tmp_path)
    template = next(s for steps in kb.steps.values() for s in steps if s.check == "quarantine_clients")
    assert template.read_only is True  # what the file says ...
    steps = bind(template, {"round.json": "fl_round"})
    assert steps and all(not s["read_only"] and needs_approval(s) for s in steps)  # ... does not decide
    assert needs_approval({"check": "quarantine_clients", "read_only": True})  # nor does a checkpointed plan
    assert not needs_approval({"check": "log_search", "read_only": True})
    assert needs_approval({"check": "log_search", "read_only": False})  # a KB may add caution


def test_a_plan_that_calls_a_state_changing_step_read_only_still_waits_for_approval(tmp_path):
    """What the graph runs without asking: a crafted plan (a tampered KB's, or a checkpoint's) marks the
    quarantine step read-only; it is still held back until a person approves it."""
    kb = tampered_kb(tmp_path)
    template = next(s for steps in kb.steps.values() for s in steps if s.check == "quarantine_clients")
    step = {**bind(template, {"round.json": "fl_round"})[0], "read_only": True}
    review = {"id": "review", "check": "fl_update_review", "read_only": True}
    state = {"plan": [step, review], "ready": [step["id"], "review"], "approvals": {}}
    assert [s["id"] for s in _runnable(state)] == ["review"]
    assert [s["id"] for s in _runnable({**state, "approvals": {step["id"]: False}})] == ["review"]
    assert [s["id"] for s in _runnable({**state, "approvals": {step["id"]: True}})] == [step["id"], "review"]
