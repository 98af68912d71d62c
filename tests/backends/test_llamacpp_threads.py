"""llama.cpp options: threads default to the cores idle right now; a spec sets threads, slots and the
deterministic engine, and refuses anything else by name."""

import pytest

from thoughtgraph.backends import BackendConfigError
from thoughtgraph.backends import llamacpp as engine


def fake_stat(monkeypatch, samples, cores=2, affinity=2):
    readings = iter(samples)
    monkeypatch.setattr(engine, "_cpu_times", lambda: next(readings))
    monkeypatch.setattr(engine.os, "cpu_count", lambda: cores)
    monkeypatch.setattr(engine.os, "sched_getaffinity", lambda pid: set(range(affinity)))
    monkeypatch.setattr(engine.time, "sleep", lambda seconds: None)


def test_threads_follow_the_idle_cores(monkeypatch):
    # /proc/stat fields: user nice system idle iowait irq softirq; 200 ticks passed, 190 idle: both cores free
    fake_stat(monkeypatch, [[0, 0, 0, 0, 0, 0, 0], [5, 0, 5, 190, 0, 0, 0]])
    assert engine.free_cores() == 2
    # 100 of 200 ticks idle: one core busy elsewhere -> 1 thread
    fake_stat(monkeypatch, [[0, 0, 0, 0, 0, 0, 0], [90, 0, 10, 80, 20, 0, 0]])
    assert engine.free_cores() == 1
    # everything busy: still 1
    fake_stat(monkeypatch, [[0, 0, 0, 0, 0, 0, 0], [200, 0, 0, 0, 0, 0, 0]])
    assert engine.free_cores() == 1
    # 8 idle cores, but this process may use only 4
    fake_stat(monkeypatch, [[0] * 7, [0, 0, 0, 800, 0, 0, 0]], cores=8, affinity=4)
    assert engine.free_cores() == 4


def test_a_spec_sets_threads_slots_and_determinism_and_anything_else_is_refused():
    assert engine.split_options("smollm2#threads=1") == ("smollm2", {"threads": 1})
    assert engine.split_options("smollm2#slots=4&threads=2") == ("smollm2", {"slots": 4, "threads": 2})
    assert engine.split_options("smollm2#deterministic=1") == ("smollm2", {"deterministic": 1})
    assert engine.split_options("/m/x.gguf") == ("/m/x.gguf", {})
    for bad in (
        "smollm2#threads=two",
        "smollm2#batch=8",
        "smollm2#slots",
        "smollm2#slots=²",
        "smollm2#slots=" + "9" * 5000,
    ):
        with pytest.raises(BackendConfigError, match=r"threads=N .*slots=N .*deterministic=0\|1"):
            engine.split_options(bad)
    for bad, why in [("threads=0", "threads takes 1 to 256"), ("slots=0", "slots takes 1 to 64"),
                     ("slots=65", "about 90 MB"), ("threads=257", "slow llama.cpp down"),
                     ("deterministic=2", "deterministic takes 0 to 1")]:  # fmt: skip
        with pytest.raises(BackendConfigError, match=why):
            engine.split_options("smollm2#" + bad)
    assert engine.split_options("smollm2#slots=64&threads=256")[1] == {"slots": 64, "threads": 256}
