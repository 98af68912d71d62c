"""Real failure reports (``corpus/real``): the schema that fits them, the known error strings read from their
prose, non-interactive runs that record a question instead of failing, and what each variant adds on them."""

import json
from collections import Counter

import pytest

from thoughtgraph.agents.diagnosis import diagnose_async, load_incidents
from thoughtgraph.agents.diagnosis.api import NO_ANSWER
from thoughtgraph.agents.diagnosis.artifacts import kind_of, read_versions
from thoughtgraph.agents.diagnosis.checks import run_check
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
from thoughtgraph.evals.diagnosis import compare_variants, comparison_table, evaluate


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


async def test_variants_are_compared_side_by_side_on_the_same_incidents(tmp_path):
    summaries = await compare_variants(REAL, tmp_path, ["full", "no-tools"], limit=4)
    saved = json.loads((tmp_path / "comparison.json").read_text())
    assert list(saved) == ["full", "no-tools"] and saved["full"]["incidents"] == 4
    table = comparison_table(summaries).splitlines()
    assert len(table) == 4 and table[2].startswith("| full | ") and table[3].startswith("| no-tools | 0.0% ")
    assert summaries["no-tools"]["abstentions"] == 4  # no model, no retrieval: nothing to name, and it says so
    with pytest.raises(ValueError, match="variants must be some of"):
        await compare_variants(REAL, tmp_path / "x", ["full", "fastest"])


COLLECT_ENV = """Collecting environment information...
PyTorch version: 2.5.1+cu124
Is CUDA available: True
Nvidia driver version: 550.120
Versions of relevant libraries:
[pip3] numpy==1.26.4
[conda] nvidia-nccl-cu12          2.21.5                   pypi_0    pypi
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("torch==2.3.0\nflash_attn==2.6.3", {"torch": "2.3.0", "flash-attn": "2.6.3"}),
        ("torch: 2.3.0\ntransformers: 4.44.2", {"torch": "2.3.0", "transformers": "4.44.2"}),
        ("torch 2.3.0\nvllm 0.6.3.post1", {"torch": "2.3.0", "vllm": "0.6.3.post1"}),
        (
            COLLECT_ENV,
            {"torch": "2.5.1+cu124", "nvidia-driver": "550.120", "numpy": "1.26.4", "nvidia-nccl-cu12": "2.21.5"},
        ),
    ],
)
def test_version_lists_are_read_in_every_form_people_paste(text, expected):
    assert read_versions(text) == expected
    assert kind_of("env.txt", text) == "packages"


def test_pinned_versions_are_checked_against_a_pasted_environment_in_another_form():
    artifacts = {
        "env.txt": "torch: 2.5.1\ntransformers: 4.44.2",
        "requirements.txt": "torch==2.3.0\ntransformers==4.44.2",
    }
    result, _ = run_check("package_versions", {"artifact": "env.txt", "required": "requirements.txt"}, artifacts)
    assert result.signals == {"version_drift": True}
    assert result.details["differences"] == {"torch": {"required": "2.3.0", "installed": "2.5.1"}}


SMI = """| NVIDIA-SMI 550.163.01             Driver Version: 550.163.01     CUDA Version: 12.4     |
|   0  NVIDIA A100-SXM4-80GB          On  | 00000000:07:00.0 Off |                    0 |
| N/A   34C    P0              62W / 400W |  80100MiB /  81920MiB |      0%      Default |
|   1  NVIDIA A100-SXM4-80GB          On  | 00000000:0B:00.0 Off |                 ERR! |
| N/A   88C    P0             301W / 400W |    300MiB /  81920MiB |    100%      Default |
"""


def test_nvidia_smi_output_is_recognised_and_read_for_faults_heat_and_full_memory():
    assert kind_of("smi.txt", SMI) == "gpu_status"
    result, _ = run_check("gpu_health", {"artifact": "smi.txt"}, {"smi.txt": SMI})
    # 80100 / 81920 = 0.978 >= 0.95; 88 C >= 85 C; the ERR! cell is a fault line
    assert result.signals == {"gpu_fault": True, "gpu_hot": True, "memory_full": True}
    assert result.details["temperatures"] == [34, 88]
    cool = SMI.replace("88C", "60C").replace("ERR!", "   0").replace("80100MiB", "10000MiB")
    result, _ = run_check("gpu_health", {"artifact": "smi.txt"}, {"smi.txt": cool})
    assert result.signals == {"gpu_fault": False, "gpu_hot": False, "memory_full": False}
    result, _ = run_check("gpu_health", {"artifact": "smi.txt"}, {"smi.txt": "hello"})
    assert result.error and "no GPU row" in result.error


def test_artifacts_can_be_files_beside_the_incident_and_may_not_leave_its_folder(tmp_path):
    folder = tmp_path / "incidents"
    (folder / "logs").mkdir(parents=True)
    (folder / "logs" / "train.log").write_text("OSError: [Errno 28] No space left on device\n")
    (tmp_path / "secret.txt").write_text("key")
    lines = [
        {"id": "a", "report": "died", "artifacts": {"train.log": {"path": "logs/train.log"}, "note": "inline"}},
        {"id": "b", "report": "died", "artifacts": {"x": {"path": "../secret.txt"}}},
        {"id": "c", "report": "died", "artifacts": {"x": {"path": str(tmp_path / "secret.txt")}}},
        {"id": "d", "report": "died", "artifacts": {"x": {"path": "logs/missing.log"}}},
        {"id": "e", "report": "died", "artifacts": {"x": {"file": "logs/train.log"}}},
    ]
    (folder / "set.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    incidents, problems = load_incidents(folder / "set.jsonl")
    assert [i.id for i in incidents] == ["a"]
    assert incidents[0].artifacts == {"train.log": "OSError: [Errno 28] No space left on device\n", "note": "inline"}
    assert [p.line for p in problems] == [2, 3, 4, 5]
    assert "outside the attachments folder" in problems[0].message and "outside" in problems[1].message
    assert "no file at logs/missing.log" in problems[2].message
    assert "a file artifact is" in problems[3].message
