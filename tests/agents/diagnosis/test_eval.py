"""``python -m thoughtgraph.evals diagnose``: scoring by hand, resuming, and refusing a held-out incident the knowledge
base was mined from."""

import json

import pytest

from thoughtgraph.agents.diagnosis.incidents import HELDOUT, HISTORY
from thoughtgraph.evals.diagnosis import evaluate, summarise


def row(top1, top3, component, seconds=1.0, **extra):
    return {
        "top1": top1, "top3": top3, "component_match": component, "iterations": 2, "tool_calls": 3, "questions": 0,
        "verification_seconds": 0.5, "verification_step_seconds": 1.0, "seconds": seconds, "parse_failures": 1,
        "model_calls": 3, "gold": "gpu_oom", "predicted": "gpu_oom" if top1 else "disk_full", "error": None, **extra,
    }  # fmt: skip


def test_summary_rates_and_wilson_intervals_by_hand():
    summary = summarise(
        [row(True, True, True), row(False, True, False), row(False, False, False), row(True, True, False)]
    )
    assert summary["top1"]["rate"] == 0.5 and summary["top3"]["rate"] == 0.75 and summary["component"]["hits"] == 1
    # Wilson 95% for 2 of 4: centre (0.5 + 1.92/4) / (1 + 3.84/4) = 0.5, half-width 0.3809 -> (0.150, 0.850)
    low, high = summary["top1"]["ci95"]
    assert low == pytest.approx(0.1500, abs=1e-3) and high == pytest.approx(0.8500, abs=1e-3)
    assert summary["verification_seconds"] == 2.0 and summary["parse_failures"] == 4


def test_per_category_confusion_and_abstentions_by_hand():
    rows = [
        row(True, True, None, gold="gpu_oom", predicted="gpu_oom"),
        row(False, True, None, gold="gpu_oom", predicted="disk_full"),
        row(False, False, None, gold="straggler", predicted=None, abstained=True),
        row(False, False, None, gold="straggler", predicted=None, error="RuntimeError: boom"),
        row(True, True, True, gold="disk_full", predicted="disk_full"),
    ]
    summary = summarise(rows)
    assert summary["per_category"] == {
        "disk_full": {"incidents": 1, "top1": 1, "top3": 1},
        "gpu_oom": {"incidents": 2, "top1": 1, "top3": 2},
        "straggler": {"incidents": 2, "top1": 0, "top3": 0},
    }
    assert summary["confusion"] == {
        "disk_full": {"disk_full": 1},
        "gpu_oom": {"disk_full": 1, "gpu_oom": 1},
        "straggler": {"error": 1, "unknown": 1},
    }
    # an abstention is not an error, and component match is rated only where the incident names a component
    assert summary["abstentions"] == 1 and summary["errors"] == 1
    assert summary["component"] == {"rate": 1.0, "hits": 1, "of": 1, "ci95": summary["component"]["ci95"]}


async def test_evaluation_scores_the_heldout_split_and_resumes(tmp_path):
    first = await evaluate(HELDOUT, tmp_path, limit=3)
    assert first["incidents"] == 3
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["straggler-08", "straggler-09", "straggler-10"]
    with (tmp_path / "results.jsonl").open("a") as results:
        results.write('{"id": "cut by a kil')  # a line cut by a killed process is run again
    second = await evaluate(HELDOUT, tmp_path, limit=5)
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines() if line.endswith("}")]
    assert [r["id"] for r in rows] == [
        "straggler-08",
        "straggler-09",
        "straggler-10",
        "dataloader_stall-08",
        "dataloader_stall-09",
    ]
    assert second["incidents"] == 5 and second["top1"]["hits"] == sum(r["top1"] for r in rows)
    assert all(r["gold"] in r["top3_predicted"] or not r["top3"] for r in rows)


async def test_a_heldout_incident_in_the_knowledge_base_is_refused(tmp_path):
    with pytest.raises(ValueError, match="is in the knowledge base's sources"):
        await evaluate(HELDOUT, tmp_path, history=[HISTORY, HELDOUT])
    with pytest.raises(ValueError, match="variant must be one of"):
        await evaluate(HELDOUT, tmp_path, variant="quick")


async def test_the_history_can_be_grouped_by_drain_templates(tmp_path):
    summary = await evaluate(HELDOUT, tmp_path / "d", limit=3, grouping="drain")
    assert summary["incidents"] == 3 and summary["errors"] == 0
    with pytest.raises(ValueError, match="grouping must be one of signature, drain"):
        await evaluate(HELDOUT, tmp_path / "x", grouping="clusters")


async def test_retrieval_only_never_runs_a_tool_and_no_tools_never_retrieves(tmp_path):
    retrieval = await evaluate(HELDOUT, tmp_path / "r", variant="retrieval-only", limit=6)
    assert retrieval["mean_tool_calls"] == 0
    bare = await evaluate(HELDOUT, tmp_path / "n", variant="no-tools", limit=6)
    rows = [json.loads(line) for line in (tmp_path / "n" / "results.jsonl").read_text().splitlines()]
    assert bare["mean_tool_calls"] == 0 and all(r["predicted"] is None for r in rows)  # no model, no retrieval
