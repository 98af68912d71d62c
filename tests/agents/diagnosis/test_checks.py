"""Verification checks and the judge's arithmetic, against values worked out by hand."""

import json

import pytest

from thoughtgraph.agents.diagnosis import judge
from thoughtgraph.agents.diagnosis.artifacts import kind_of
from thoughtgraph.agents.diagnosis.checks import run_check


def test_artifact_kinds_come_from_content_not_names():
    assert kind_of("x", "worker,step,step_time\n0,0,1.0\n") == "step_times"
    assert kind_of("x", "step,loss\n0,2.0\n") == "metrics"
    assert kind_of("x", "src,dst,loss_pct\nn0,n1,0\n") == "network"
    assert kind_of("x", json.dumps({"clients": []})) == "fl_round"
    assert kind_of("x", json.dumps({"trusted": {}, "received": {}})) == "model_pair"
    assert kind_of("x", "Filesystem Size Used Avail Use% Mounted on\n") == "disk_usage"
    assert kind_of("x", "torch==2.4.1\nnumpy==1.26.4\n") == "packages"
    assert kind_of("x", "RuntimeError: boom, at step 3, rank 2") == "log"
    assert kind_of("x", "{broken json") == "log"


def test_worker_spread_finds_the_straggler_and_asks_lbbsp_for_a_split():
    # worker 1 takes 2 s per step, workers 0 and 2 take 1 s: slowest/median = 2.0; data time 0.1 of 4 s per step
    rows = ["worker,step,step_time,data_time"] + [
        f"{w},{s},{t},0.0333333" for s in range(3) for w, t in ((0, 1), (1, 2), (2, 1))
    ]
    result, _ = run_check("worker_step_spread", {"artifact": "t.csv"}, {"t.csv": "\n".join(rows)})
    assert result.error is None
    assert result.details["slowest"] == "1" and result.details["slowest_over_median"] == pytest.approx(2.0)
    assert result.details["data_wait_share"] == pytest.approx(0.3 / 12)
    assert result.signals == {"slow_worker": True, "data_wait": False}
    assert result.tools == ["lbbsp_batch_sizes"]
    split = result.details["lbbsp_batch_sizes"]
    assert sum(split.values()) == 96 and split["1"] < split["0"]  # the slow worker gets less work


def test_metric_anomalies_nan_spike_and_growth():
    rows = "step,grad_norm,memory_gb\n" + "\n".join(f"{s},{g},{m}" for s, g, m in [
        (0, 1.0, 10), (1, 1.1, 11), (2, 0.9, 12), (3, 1.0, 13), (4, 50.0, 14), (5, "nan", 15), (6, 1.0, 16),
    ])  # fmt: skip
    spike, _ = run_check("metric_anomalies", {"artifact": "m.csv", "column": "grad_norm"}, {"m.csv": rows})
    assert spike.signals == {"grad_norm_nan": True, "grad_norm_spike": True, "grad_norm_growth": False}
    growth, _ = run_check("metric_anomalies", {"artifact": "m.csv", "column": "memory_gb"}, {"m.csv": rows})
    # last three average 15 against the first three's 11: +36% > 20%, and every step rises
    assert growth.signals == {"memory_gb_nan": False, "memory_gb_spike": False, "memory_gb_growth": True}


def test_collective_sequence_disk_packages_and_network():
    log = (
        "[rank0]: [Rank 0] Watchdog caught ... WorkNCCL(SeqNum=7, OpType=ALLREDUCE)\n[rank1]: [Rank 1] ... SeqNum=6, x"
    )
    desync, _ = run_check("collective_sequence", {"artifact": "l"}, {"l": log})
    assert desync.signals == {"desync": True} and desync.details["seq_by_rank"] == {"0": 7, "1": 6}
    df = "Filesystem Size Used Avail Use% Mounted on\n/dev/a 1T 1T 0 100% /ckpt\n/dev/b 1T 1G 1T 1% /"
    full, _ = run_check("disk_usage", {"artifact": "d"}, {"d": df})
    assert full.signals == {"disk_full": True} and "/ckpt at 100%" in full.summary
    pins = {"freeze": "torch==2.5.0\nnumpy==1.0", "requirements.txt": "torch==2.4.1\nnumpy==1.0\nvllm==0.6.1"}
    drift, _ = run_check("package_versions", {"artifact": "freeze", "required": "requirements.txt"}, pins)
    assert drift.details["differences"] == {
        "torch": {"required": "2.4.1", "installed": "2.5.0"},
        "vllm": {"required": "0.6.1", "installed": "missing"},
    }
    probe = "src,dst,loss_pct\nn0,n1,0.1\nn1,n0,40"
    lossy, _ = run_check("network_probe", {"artifact": "p"}, {"p": probe})
    assert lossy.signals == {"packet_loss": True} and lossy.details["lossy_pairs"] == [("n1", "n0", 40.0)]


def test_fl_review_flags_the_outlier_and_quarantine_measures_the_recovery():
    honest = [[1.0, 1.0], [1.1, 0.9], [0.9, 1.1], [1.0, 1.05], [1.05, 1.0]]
    clients = [{"id": f"c{i}", "update": u} for i, u in enumerate([*honest, [-8.0, -8.0]])]
    artifacts = {"u.json": json.dumps({"clients": clients})}
    review, _ = run_check("fl_update_review", {"artifact": "u.json"}, artifacts)
    assert review.details["flagged"] == ["c5"] and review.signals["outlier_clients"]
    quarantine, _ = run_check("quarantine_clients", {"artifact": "u.json", "clients": ["c5"]}, artifacts)
    # coordinate median (1.0, 1.0), norm sqrt 2; mean of all six (-2.95/6, -2.95/6): relative distance 1.49167;
    # mean of the honest five (1.01, 1.01): relative distance 0.01
    assert quarantine.details["before"] == pytest.approx(1.49167, abs=1e-4)
    assert quarantine.details["after"] == pytest.approx(0.01, abs=1e-9)
    assert quarantine.signals == {"recovers": True}


def test_a_check_given_garbage_returns_an_error_observation():
    for name, arguments, artifacts, expected in [
        ("worker_step_spread", {"artifact": "t"}, {"t": "a,b\n1,2"}, "no column worker, step_time"),
        ("worker_step_spread", {"artifact": "t"}, {"t": "worker,step_time\n0,fast\n1,1"}, "expected a number"),
        ("fl_update_review", {"artifact": "j"}, {"j": "{bad"}, "not valid JSON"),
        ("hot_channels", {"artifact": "j"}, {"j": json.dumps({"channel_max_abs": [[1, "x"]]})}, "tool error"),
        ("disk_usage", {"artifact": "nope"}, {}, "no artifact named 'nope'"),
        ("log_search", {"pattern": ""}, {"l": "x"}, "needs a pattern"),
        ("no_such_check", {}, {}, "no check named"),
    ]:
        result, _ = run_check(name, arguments, artifacts)
        assert result.error is not None and expected in result.summary, (name, result.summary)


def test_log_search_is_literal_not_a_regex():
    result, _ = run_check("log_search", {"pattern": "(a+)+$", "context": 0}, {"l": "x (a+)+$ y\naaaa"})
    assert [m["line"] for m in result.details["matches"]] == [1]


def test_judge_updates_by_likelihood_ratios():
    posteriors = judge.initial_posteriors({"a": 0.75, "b": 0.25})
    assert posteriors == pytest.approx({"a": 0.675, "b": 0.225, "unknown": 0.1})
    found = judge.effects({"s": {"b": "confirms", "a": "weakens"}}, {"s": True})
    updated = judge.update(posteriors, found)
    # a: 0.675/3 = 0.225; b: 0.225*12 = 2.7; unknown 0.1; total 3.025
    assert updated == pytest.approx({"a": 0.225 / 3.025, "b": 2.7 / 3.025, "unknown": 0.1 / 3.025})
    assert judge.verdict(updated) == "confirmed"
    absent = judge.update(posteriors, judge.effects({"s": {"a": "confirms", "b": "confirms"}}, {"s": False}))
    # both x0.15: 0.10125, 0.03375, unknown 0.1 -> unknown 0.4255: neither confirmed nor all refuted
    assert absent["unknown"] == pytest.approx(0.1 / 0.235) and judge.verdict(absent) is None
    twice = judge.update(absent, judge.effects({"t": {"a": "confirms", "b": "confirms"}}, {"t": False}))
    assert judge.verdict(twice) == "refuted"


def test_json_cut_off_by_the_token_limit_keeps_what_was_complete():
    from thoughtgraph.agents.diagnosis.llm import HypothesesReply, IntakeReply, _parser, close_truncated_json

    assert close_truncated_json('{"a": ["x", "yy') == ['{"a": ["x", "yy"]}', '{"a": ["x"]}']
    assert close_truncated_json('{"a": "say \\"hi') == ['{"a": "say \\"hi"}']  # an escaped quote stays open
    intake = _parser(IntakeReply)('{"workload_kind": "training", "symptoms": ["gpu", "1.0.2.1-1.0')
    assert intake.workload_kind == "training" and intake.symptoms == ["gpu", "1.0.2.1-1.0"]
    # a half-written member that cannot validate is dropped by cutting back to the previous comma
    table = _parser(HypothesesReply)('{"hypotheses": [{"category": "gpu_oom"}, {"category": "disk_')
    assert [h.category for h in table.hypotheses] == ["gpu_oom"]
    assert _parser(IntakeReply)("no json here") is None


def test_log_search_signal_context_and_scope():
    log = "a\nb\nNCCL timeout here\nc\nd\ne"
    found, _ = run_check("log_search", {"pattern": "nccl TIMEOUT", "context": 1}, {"l.log": log, "m.log": "x"})
    assert found.signals == {"found": True}
    assert found.details["matches"] == [{"artifact": "l.log", "line": 3, "context": ["b", "NCCL timeout here", "c"]}]
    assert found.summary == "1 line(s) match 'nccl TIMEOUT', first: 'NCCL timeout here'"
    wide, _ = run_check("log_search", {"pattern": "timeout", "context": 10}, {"l.log": log})
    assert wide.details["matches"][0]["context"] == log.splitlines()  # context is capped at 5 lines each side
    missing, _ = run_check("log_search", {"pattern": "timeout", "artifact": "m.log"}, {"l.log": log, "m.log": "x"})
    assert missing.signals == {"found": False} and missing.details["matches"] == []
    many, _ = run_check("log_search", {"pattern": "e"}, {"l.log": "e\n" * 50})
    assert len(many.details["matches"]) == 20


def test_fl_review_label_skew_staleness_and_pisces_weights_by_hand():
    clients = [
        {"id": "a", "update": [1.0, 1.0], "samples": 10, "staleness": 0, "label_counts": [10, 0]},
        {"id": "b", "update": [1.0, 1.0], "samples": 10, "staleness": 0, "label_counts": [0, 10]},
        {"id": "c", "update": [1.0, 1.0], "samples": 10, "staleness": 3, "label_counts": [10, 0]},
        {"id": "d", "update": [1.0, 1.0], "samples": 10, "staleness": 8, "label_counts": [0, 10]},
    ]
    review, _ = run_check("fl_update_review", {"artifact": "u"}, {"u": json.dumps({"clients": clients})})
    # every client's label share is 0.5 (total variation) away from the overall (0.5, 0.5)
    assert review.details["label_skew"] == pytest.approx(0.5)
    # Pisces: share / (staleness + 1)^0.5, renormalised: 1, 1, 1/2, 1/3 over 2.8333
    assert list(review.details["pisces_weights"].values()) == pytest.approx([0.3529, 0.3529, 0.1765, 0.1176], abs=1e-4)
    assert review.tools == ["pisces_aggregation_weights"]
    assert review.details["flagged"] == [] and review.details["agreement"] == pytest.approx(1.0)
    assert review.signals == {
        "outlier_clients": False,
        "broad_divergence": False,
        "label_skew": True,
        "stale_clients": True,
    }
    assert review.summary == "0 of 4 update(s) are outliers []; unflagged agreement 1.00; label skew 0.50"
    mild = [dict(c, label_counts=[5, 5], staleness=1) for c in clients[:2]] + [
        dict(clients[0], id="e", label_counts=[10, 0])
    ]
    calm, _ = run_check("fl_update_review", {"artifact": "u"}, {"u": json.dumps({"clients": mild})})
    # shares (.5,.5), (.5,.5), (1,0); overall (2/3, 1/3); distances 1/6, 1/6, 1/3 -> mean 2/9
    assert calm.details["label_skew"] == pytest.approx(2 / 9)
    assert calm.signals["label_skew"] is False and calm.signals["stale_clients"] is False


def test_fl_review_needs_three_clients_with_equal_updates():
    two = json.dumps({"clients": [{"id": "a", "update": [1]}, {"id": "b", "update": [2]}]})
    short, _ = run_check("fl_update_review", {"artifact": "u"}, {"u": two})
    assert "at least 3 clients" in short.summary
    ragged = json.dumps({"clients": [{"update": [1]}, {"update": [2]}, {"update": [1, 2]}]})
    assert "different lengths" in run_check("fl_update_review", {"artifact": "u"}, {"u": ragged})[0].summary
    honest = [{"id": f"c{i}", "update": [1.0, 1.0]} for i in range(3)]
    quarantine, _ = run_check(
        "quarantine_clients", {"artifact": "u", "clients": ["c0", "c1", "c2"]}, {"u": json.dumps({"clients": honest})}
    )
    assert "would exclude every client" in quarantine.summary
    calm, _ = run_check(
        "quarantine_clients", {"artifact": "u", "clients": ["c0"]}, {"u": json.dumps({"clients": honest})}
    )
    assert calm.signals == {"recovers": False}  # nothing was off: no recovery to see


def test_thresholds_of_disk_network_and_hot_channels():
    def df(percent):
        return f"Filesystem Size Used Avail Use% Mounted on\n/dev/a 1T 1T 0 {percent}% /ckpt"

    assert run_check("disk_usage", {"artifact": "d"}, {"d": df(96)})[0].signals == {"disk_full": False}
    assert run_check("disk_usage", {"artifact": "d"}, {"d": df(97)})[0].signals == {"disk_full": True}
    for loss, lossy in ((4.9, False), (5.0, True)):
        probe = f"src,dst,loss_pct\nn0,n1,{loss}"
        assert run_check("network_probe", {"artifact": "p"}, {"p": probe})[0].signals == {"packet_loss": lossy}
    steady = [[1.0] * 8 for _ in range(10)]
    hot = [[50.0 if c == 3 else 1.0 for c in range(8)] for _ in range(10)]
    quiet, _ = run_check("hot_channels", {"artifact": "a"}, {"a": json.dumps({"channel_max_abs": steady})})
    loud, _ = run_check("hot_channels", {"artifact": "a"}, {"a": json.dumps({"channel_max_abs": hot})})
    assert quiet.signals == {"hot_channels": False} and loud.signals == {"hot_channels": True}
    assert loud.details["persistent"] == [3] and loud.tools == ["nvfp4_hot_channels"]


def test_package_names_compare_as_pip_does():
    pins = {"i": "Flash_Attn==2.6.3  # built here\ntorch==2.4.1", "r": "flash-attn==2.6.3\ntorch==2.4.1"}
    same, _ = run_check("package_versions", {"artifact": "i", "required": "r"}, pins)
    assert same.signals == {"version_drift": False} and same.summary == "0 of 2 pinned package(s) differ"


def test_collective_sequence_reads_both_rank_spellings():
    log = "[rank3]: ... WorkNCCL(SeqNum=9, OpType=ALLREDUCE)\n[Rank 5] ... WorkNCCL(SeqNum=9, OpType=ALLREDUCE)"
    result, _ = run_check("collective_sequence", {"artifact": "l"}, {"l": log})
    assert result.details["seq_by_rank"] == {"3": 9, "5": 9} and result.signals == {"desync": False}
    assert run_check("collective_sequence", {"artifact": "l"}, {"l": "no watchdog"})[0].signals == {}


def test_json_artifacts_without_known_keys_are_treated_as_logs():
    assert kind_of("x", json.dumps({"something": 1})) == "log"
    assert kind_of("x", json.dumps([1, 2])) == "log"
    assert kind_of("x", json.dumps({"channel_max_abs": []})) == "activation_stats"
    assert kind_of("x", json.dumps({"expert_seconds": []})) == "expert_stats"
    assert kind_of("x", json.dumps({"files": []})) == "checkpoint_manifest"
    assert kind_of("x", json.dumps({"clients": {}})) == "log"  # clients must be a list


def test_worker_spread_sees_data_waits_and_its_thresholds():
    # every worker takes 1.0 s a step and waits 0.6 s of it for data: no straggler, a data stall
    rows = ["worker,step,step_time,data_time"] + [f"{w},{s},1.0,0.6" for s in range(2) for w in range(3)]
    stall, _ = run_check("worker_step_spread", {"artifact": "t"}, {"t": "\n".join(rows)})
    assert stall.signals == {"slow_worker": False, "data_wait": True}
    assert stall.details["data_wait_share"] == pytest.approx(0.6)
    # slowest / median exactly 1.3 counts as slow; 1.29 does not
    for slow, expected in ((1.3, True), (1.29, False)):
        rows = ["worker,step,step_time"] + [f"{w},0,{t}" for w, t in ((0, 1.0), (1, 1.0), (2, slow))]
        result, _ = run_check("worker_step_spread", {"artifact": "t"}, {"t": "\n".join(rows)})
        assert result.signals["slow_worker"] is expected and result.signals["data_wait"] is False


def test_metric_spike_needs_both_rules():
    def spikes(peak):
        rows = "step,loss\n" + "\n".join(f"{s},{v}" for s, v in enumerate([1.0, 1.0, 1.01, 0.99, 1.0, peak]))
        return run_check("metric_anomalies", {"artifact": "m", "column": "loss"}, {"m": rows})[0].signals["loss_spike"]

    assert spikes(3.5) is True  # far above the median in MADs and above 3x the median
    assert spikes(2.5) is False  # far in MADs but under 3x the median


def test_approval_answers_are_read_strictly():
    from thoughtgraph.agents.diagnosis.graph import _approved

    for yes in (True, "y", "YES", " approve ", "Approved", "ok", ["s1"], {"s1": True}):
        assert _approved(yes, "s1") is True, yes
    for no in (False, "n", "", "sure", ["s2"], {"s1": "yes"}, {"s2": True}, None, 1):
        assert _approved(no, "s1") is False, no


def test_the_report_reads_as_text():
    from thoughtgraph.agents.diagnosis.api import describe_report

    report = {
        "category": "disk_full", "component": "storage", "confidence": 0.934, "status": "confirmed",
        "summary": "The volume filled.", "mitigation": "Free space.", "tool_calls": 2, "iterations": 1,
        "verification_seconds": 0.0125,
        "evidence": [
            {"step": "disk_usage#1", "tools": [], "seconds": 0.002, "summary": "fullest filesystem /ckpt at 100%"},
            {"step": "lb#2", "tools": ["lbbsp_batch_sizes"], "seconds": 0.0101, "summary": "split"},
        ],
    }  # fmt: skip
    assert describe_report(report).splitlines() == [
        "Root cause: disk_full (component: storage), confidence 93% [confirmed]",
        "Summary: The volume filled.",
        "Evidence:",
        "  - [disk_usage#1, 2 ms] fullest filesystem /ckpt at 100%",
        "  - [lb#2 via lbbsp_batch_sizes, 10 ms] split",
        "Mitigation: Free space.",
        "Steps run: 2 in 1 round(s), verification 12 ms",
    ]
    assert "(no verification step ran)" in describe_report({**report, "evidence": []})


def test_csv_columns_other_tools_print_are_understood():
    profiler = "rank,iteration,iter_time,dataloader_time\n0,1,1.0,0.01\n1,1,2.0,0.01\n2,1,1.0,0.01"
    assert kind_of("p.csv", profiler) == "step_times"
    result, _ = run_check("worker_step_spread", {"artifact": "p"}, {"p": profiler})
    assert result.details["slowest"] == "1" and result.signals["slow_worker"] is True
    assert kind_of("ping.csv", "source,destination,packet_loss\nn0,n1,0") == "network"


def test_each_check_binds_its_own_artifact_arguments():
    from thoughtgraph.agents.diagnosis.checks import CHECKS

    kinds = {"requirements.txt": "packages", "pip_freeze.txt": "packages", "a.log": "log", "b.log": "log",
             "m.csv": "metrics", "n.csv": "metrics"}  # fmt: skip
    assert CHECKS["package_versions"].bindings(kinds) == [
        {"artifact": "pip_freeze.txt", "required": "requirements.txt"}
    ]
    assert CHECKS["package_versions"].bindings({"pip_freeze.txt": "packages"}) == []  # nothing to compare with
    assert CHECKS["log_search"].bindings(kinds) == [{}]  # one search over every log
    assert CHECKS["log_search"].bindings({"m.csv": "metrics"}) == []
    assert CHECKS["metric_anomalies"].bindings(kinds) == [{"artifact": "m.csv"}, {"artifact": "n.csv"}]
    assert CHECKS["disk_usage"].bindings(kinds) == []


def test_approval_follows_from_what_a_check_and_its_tools_declare(monkeypatch):
    from pydantic import BaseModel

    from thoughtgraph.agents.diagnosis import checks
    from thoughtgraph.agents.tools import registry

    class Nothing(BaseModel):
        pass

    monkeypatch.setattr(registry, "TOOLS", dict(registry.TOOLS))
    monkeypatch.setattr(checks, "TOOLS", registry.TOOLS)
    monkeypatch.setattr(checks, "CHECKS", dict(checks.CHECKS))

    @registry.tool("restart_worker", Nothing, "approximation", effects="changes_state")
    def restart_worker(_: Nothing) -> Nothing:
        """Restarts a worker (an approximation of an operator's action, for this test)."""
        return Nothing()

    def uses(tool: str):
        def run(arguments, artifacts):
            used: list[str] = []
            checks._call(tool, {}, used)
            return checks.CheckResult("ran", tools=used)

        return run

    checks.check("restarts", needs="log", tools=("restart_worker",))(uses("restart_worker"))
    checks.check("reads", needs="log", tools=("nvfp4_hot_channels",))(uses("restart_worker"))
    assert checks.CHECKS["restarts"].read_only is False  # a state-changing tool makes the check need approval
    assert checks.CHECKS["reads"].read_only is True
    result, _ = checks.run_check("reads", {}, {"train.log": "x"})
    assert result.error == "the check called tool(s) ['restart_worker'] it does not declare"
    with pytest.raises(ValueError, match="names unknown tool"):
        checks.check("typo", needs="log", tools=("restart_workers",))(uses("restart_worker"))
    with pytest.raises(ValueError, match="registered twice"):
        checks.check("restarts", needs="log")(uses("restart_worker"))
    with pytest.raises(ValueError, match="depends on check\\(s\\) declared after it or nowhere"):
        checks.check("later", needs="log", depends_on=("nowhere",))(uses("restart_worker"))
