"""Real failure reports (``corpus/real``): the schema that fits them, the known error strings read from their
prose, non-interactive runs that record a question instead of failing, and what each variant adds on them."""

import json
from collections import Counter

import pytest

from thoughtgraph.agents.diagnosis import diagnose_async, load_incidents
from thoughtgraph.agents.diagnosis.api import NO_ANSWER
from thoughtgraph.agents.diagnosis.graph import known_error_matches
from thoughtgraph.agents.diagnosis.incidents import (
    CATEGORIES,
    HISTORY,
    REAL,
    normalise_component,
    parse_incident_line,
    same_component,
)
from thoughtgraph.agents.diagnosis.known_errors import (
    DECISIVE_RATIO,
    SUGGESTIVE_RATIO,
    Match,
    combine,
    evidence_ratios,
    matches,
)
from thoughtgraph.evals.diagnosis import evaluate


def record(**fields):
    return json.dumps({"id": "x", "report": "it broke", **fields})


def test_unknown_fields_and_workload_keys_are_refused_by_name():
    problem = parse_incident_line(record(label="gpu_oom"))
    assert "unknown field 'label'" in problem.message
    problem = parse_incident_line(record(workload={"kind": "training", "answer": "gpu_oom"}))
    assert "unknown workload key 'answer'" in problem.message and "workload keys: kind" in problem.message
    problem = parse_incident_line(record(root_cause={"category": "gpu_oom", "why": "x"}))
    assert "unknown field 'root_cause.why'" in problem.message
    problem = parse_incident_line(record(secondary_categories=["cosmic_rays"]))
    assert "unknown root-cause category 'cosmic_rays'" in problem.message


def test_source_notes_secondary_categories_and_an_optional_component_are_real_fields():
    incident = parse_incident_line(
        record(
            source="https://github.com/o/r/issues/1", notes="maintainer said so", secondary_categories=["disk_full"],
            root_cause={"category": "checkpoint_corruption"},
        )
    )  # fmt: skip
    assert incident.source.endswith("/issues/1") and incident.secondary_categories == ["disk_full"]
    assert incident.root_cause.component is None
    public = incident.public()  # what a diagnosis system is given: no label, no notes, no source
    assert (
        public.root_cause is None and public.notes == "" and public.source == "" and public.secondary_categories == []
    )


def test_components_match_after_case_punctuation_and_synonyms():
    assert normalise_component("DataLoader num_workers") == "data loader num workers"
    assert same_component("data-loader  NUM WORKERS", "DataLoader num_workers")
    assert same_component("LR", "learning rate") and same_component("VRAM", "GPU memory")
    assert not same_component("learning rate", "batch size")
    assert same_component(None, "batch size") is False and same_component("anything", None) is None


@pytest.mark.parametrize(
    ("line", "category"),
    [
        ("RuntimeError: CUDA error: out of memory", "gpu_oom"),
        (
            "[Rank 3] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=12, OpType=BROADCAST)",
            "collective_timeout",
        ),
        ("RuntimeError: DataLoader timed out after 120 seconds", "dataloader_stall"),
        ("_pickle.UnpicklingError: invalid load key, '<'.", "checkpoint_corruption"),
        ("OSError: libcudart.so.11.0: undefined symbol: cudaGetDeviceCount", "version_mismatch"),
        ("write error: No space left on device", "disk_full"),
        ("socket.gaierror: [Errno -2] Name or service not known", "network_partition"),
        ("NVRM: Xid (PCI:0000:3b:00): 48, An uncorrectable double bit error (DBE) has been detected", "hardware_fault"),
        ("IndexError: Target 12 is out of bounds.", "bad_input_data"),
        ("RuntimeError: CUDA error: invalid device ordinal", "launch_config"),
    ],
)
def test_a_library_error_string_is_decisive_evidence_for_its_cause(line, category):
    found = matches(f"Traceback (most recent call last):\n  ...\n{line}\n")
    assert any(m.category == category and m.strength == "decisive" for m in found)
    assert max(evidence_ratios(found).items(), key=lambda item: item[1])[0] == category


def test_evidence_ratios_count_one_decisive_and_at_most_two_suggestive_matches():
    found = [Match("gpu_oom", "decisive", "PyTorch", "a"), Match("gpu_oom", "decisive", "CUDA", "b")]
    found += [Match("straggler", "suggestive", "phrase", t) for t in "abc"]
    ratios = evidence_ratios(found)
    assert ratios == {"gpu_oom": DECISIVE_RATIO, "straggler": SUGGESTIVE_RATIO**2}


def test_combine_by_hand():
    # retrieval says disk_full 0.6, checkpoint_corruption 0.4; a decisive gpu_oom string (ratio 25) matched:
    # weights (0.6+0.02), (0.4+0.02), (0+0.02)*25 = 0.62, 0.42, 0.5; total 1.54
    combined = combine({"disk_full": 0.6, "checkpoint_corruption": 0.4}, {"gpu_oom": 25.0})
    assert combined["disk_full"] == pytest.approx(0.62 / 1.54)
    assert combined["gpu_oom"] == pytest.approx(0.5 / 1.54)
    assert list(combined) == ["disk_full", "gpu_oom", "checkpoint_corruption"]
    assert combine({"disk_full": 1.0}, {}) == {"disk_full": 1.0}  # nothing matched: retrieval stands


def test_matches_read_the_report_and_its_logs_but_not_tables():
    incident = {
        "report": "The job died overnight.",
        "artifacts": {"train.log": "OSError: [Errno 28] No space left on device", "sizes.csv": "a,b\n1,2"},
    }
    assert {m["category"] for m in known_error_matches(incident)} == {"disk_full"}


async def test_a_prose_report_without_a_workload_kind_is_diagnosed_and_the_question_recorded():
    report = "Saving the checkpoint at step 4000 failed:\nOSError: [Errno 28] No space left on device"
    diagnosis = await diagnose_async(report, answer=NO_ANSWER)
    assert diagnosis.category == "disk_full"
    assert diagnosis.report["questions"] == 1  # asked, answered with nothing, recorded
    assert any("known error" in line for h in diagnosis.report["hypotheses"] for line in h["evidence_for"])


def test_the_real_set_is_public_sourced_varied_and_never_mined():
    incidents, problems = load_incidents(REAL)
    assert problems == [] and len(incidents) >= 60
    assert all(i.source.startswith("https://github.com/") and i.notes for i in incidents)
    assert len({i.source for i in incidents}) == len(incidents)
    assert len(Counter(i.root_cause.category for i in incidents)) >= 10
    assert {i.root_cause.category for i in incidents} <= set(CATEGORIES)
    history, _ = load_incidents(HISTORY)
    assert not {i.id for i in incidents} & {i.id for i in history}


async def test_on_real_reports_the_full_graph_beats_retrieval_alone_and_scores_no_question_as_an_error(tmp_path):
    retrieval = await evaluate(REAL, tmp_path / "r", variant="retrieval-only")
    full = await evaluate(REAL, tmp_path / "f", variant="full")
    assert full["errors"] == 0 and retrieval["errors"] == 0
    assert full["questions"] > 0  # most real reports do not say what kind of job it was
    assert full["top1"]["rate"] - retrieval["top1"]["rate"] >= 0.10
    assert full["top3"]["rate"] >= retrieval["top3"]["rate"]
    assert set(full["per_category"]) == {i.root_cause.category for i in load_incidents(REAL)[0]}
