"""Incident records, error signatures and knowledge-base mining, checked against hand-worked values."""

import json
from typing import ClassVar

import pytest

from thoughtgraph.agents.diagnosis.incidents import CATEGORIES, HELDOUT, HISTORY, Incident, load_incidents
from thoughtgraph.agents.diagnosis.knowledge import KnowledgeBase, mine
from thoughtgraph.agents.diagnosis.signatures import normalise, primary_signature, signatures


def incident(id, category, log, report="it broke", actions=(), component="c", mitigation="m"):
    return Incident.model_validate(
        {
            "id": id, "report": report, "workload": {"kind": "training"}, "artifacts": {"train.log": log},
            "actions": list(actions), "root_cause": {"category": category, "component": component, "reason": "r"},
            "mitigation": mitigation,
        }
    )  # fmt: skip


def test_normalise_masks_what_varies_between_occurrences():
    line = (
        "2026-03-01 10:00:02.123 [rank3]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB "
        "at /home/ana/run/train.py 0x7f3a9c 10.0.0.12:29500"
    )
    assert normalise(line) == (
        "[rank <id>]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate <n> GiB at <path> <hex> <addr>"
    )
    # the same failure on another rank, day, size and host gives the same signature
    other = line.replace("rank3", "rank7").replace("2.00", "8.50").replace("10.0.0.12:29500", "10.1.2.3:1")
    assert normalise(other.replace("2026-03-01", "2026-11-30")) == normalise(line)


def test_signatures_keep_error_lines_in_order_once_each():
    log = "INFO step 1 loss 2.0\nRuntimeError: bad thing 12\nINFO ok\nRuntimeError: bad thing 13\nWARNING: slow 3\n"
    assert signatures(log) == ["RuntimeError: bad thing <n>", "WARNING: slow <n>"]


def test_primary_signature_ignores_prose_that_only_mentions_an_error():
    assert primary_signature("nothing in the logs looks like an error", {}) == "<no error line>"
    assert primary_signature("we saw `ValueError: x 3`", {}) == "we saw `ValueError: x <n>`"


def test_mining_groups_by_signature_with_counted_priors_steps_and_sources():
    oom = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {} GiB"
    search = {"step": 1, "tool": "log_search", "arguments": {"pattern": "out of memory"}, "observation": "found"}
    spread = {"step": 2, "tool": "worker_step_spread", "arguments": {"artifact": "x.csv"}, "observation": "slow"}
    history = [
        incident("a", "gpu_oom", oom.format("2.00"), actions=[search], component="gpu memory", mitigation="smaller"),
        incident("b", "gpu_oom", oom.format("8.50"), actions=[search], component="gpu memory", mitigation="smaller"),
        incident("c", "version_mismatch", oom.format("1.00"), component="env", mitigation="pin"),
        incident("d", "straggler", "INFO all fine", actions=[spread], component="worker node"),
    ]
    kb = mine(history)
    by_signature = {e.signature: e for e in kb.entries}
    assert set(by_signature) == {
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate <n> GiB",
        "<no error line>",
    }
    oom_entry = by_signature["torch.OutOfMemoryError: CUDA out of memory. Tried to allocate <n> GiB"]
    assert oom_entry.hypotheses == {"gpu_oom": 2, "version_mismatch": 1}
    assert oom_entry.sources == ["a", "b", "c"]
    assert oom_entry.components == {"gpu_oom": "gpu memory", "version_mismatch": "env"}
    assert oom_entry.mitigations == {"gpu_oom": "smaller", "version_mismatch": "pin"}
    [step] = oom_entry.steps  # both incidents' identical log searches merge into one step with both sources
    assert (step.check, step.arguments, step.sources) == ("log_search", {"pattern": "out of memory"}, ["a", "b"])
    assert step.meaning == {"found": {"gpu_oom": "supports"}} and step.read_only
    # the artifact argument is bound per incident at plan time, so the template drops it
    [spread_step] = kb.steps["straggler"]
    assert spread_step.arguments == {} and spread_step.meaning["slow_worker"]["straggler"] == "confirms"
    assert by_signature["<no error line>"].hypotheses == {"straggler": 1}


def test_priors_split_half_entries_half_similar_incidents():
    history = [
        incident("a", "gpu_oom", "RuntimeError: CUDA out of memory", report="cuda memory crash"),
        incident("b", "version_mismatch", "RuntimeError: CUDA out of memory", report="cuda memory crash"),
    ]
    kb = mine(history)
    # one entry (1 of each), two incidents scoring the same: every share is one half
    assert kb.priors("cuda memory crash RuntimeError") == pytest.approx({"gpu_oom": 0.5, "version_mismatch": 0.5})


def test_knowledge_base_round_trips_through_its_file(tmp_path):
    kb = mine(load_incidents(HISTORY)[0])
    loaded = KnowledgeBase.load(kb.save(tmp_path))
    assert [e.signature for e in loaded.entries] == [e.signature for e in kb.entries]
    assert loaded.priors("NCCL watchdog timeout") == kb.priors("NCCL watchdog timeout")
    (tmp_path / "kb.json").write_text(json.dumps({"version": 99}))
    with pytest.raises(ValueError, match="not a knowledge base"):
        KnowledgeBase.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="diagnose mine"):
        KnowledgeBase.load(tmp_path / "missing")


def test_malformed_incident_lines_are_named_and_the_rest_still_load(tmp_path):
    good = incident("ok", "disk_full", "OSError: [Errno 28] No space left on device").model_dump_json()
    lines = [
        good,
        "{not json",
        json.dumps({"id": "x", "report": "r", "root_cause": {"category": "cosmic_rays", "component": "c"}}),
        json.dumps([1, 2]),
        json.dumps({"id": "y", "report": "r", "workload": {"kind": "gaming"}}),
        good,
    ]
    path = tmp_path / "incidents.jsonl"
    path.write_text("\n".join(lines) + "\n")
    loaded, problems = load_incidents(path)
    assert [i.id for i in loaded] == ["ok"]
    assert [(p.line, p.file) for p in problems] == [
        (2, str(path)),
        (3, str(path)),
        (4, str(path)),
        (5, str(path)),
        (6, str(path)),
    ]
    messages = [p.message for p in problems]
    assert "not valid JSON" in messages[0]
    assert "unknown root-cause category 'cosmic_rays'" in messages[1]
    assert "JSON object" in messages[2]
    assert "workload.kind" in messages[3]
    assert "appears twice" in messages[4]
    with pytest.raises(FileNotFoundError, match="no incident file"):
        load_incidents(tmp_path / "nope.jsonl")


def test_shipped_corpus_covers_every_category_with_a_disjoint_heldout_split():
    history, problems = load_incidents(HISTORY)
    heldout, more = load_incidents(HELDOUT)
    assert problems == [] and more == []
    for category in CATEGORIES:
        total = sum(i.root_cause.category == category for i in history + heldout)
        assert total >= 8, category
        assert any(i.root_cause.category == category for i in heldout), category
    assert not {i.id for i in history} & {i.id for i in heldout}
    assert all(i.actions and i.mitigation and i.artifacts for i in history + heldout)
    # reports alone do not decide the confusable pairs: each family shares its wording
    reports = {i.root_cause.category: set() for i in history}
    for i in history:
        reports[i.root_cause.category].add(i.report.split(".")[0][:30])
    assert reports["straggler"] & reports["dataloader_stall"]


class SynonymEmbedder:
    """TEST DOUBLE for an embedding model: each word maps to a topic axis (synonyms share one), a text is the
    normalised sum of its words' axes. Enough to tell whether retrieval uses meaning beyond shared words."""

    id = "synonyms-v1"
    topics: ClassVar = {"slow": 0, "sluggish": 0, "throughput": 0, "memory": 1, "oom": 1, "disk": 2, "space": 2}

    def embed(self, texts):
        import numpy as np

        rows = np.zeros((len(texts), 3))
        for row, text in enumerate(texts):
            for word in text.lower().split():
                if word in self.topics:
                    rows[row, self.topics[word]] += 1
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        return rows / np.where(norms > 0, norms, 1)


def test_embeddings_find_what_shares_no_word_and_fuse_by_reciprocal_rank(tmp_path):
    history = [
        incident("m", "gpu_oom", "x", report="memory oom crash"),
        incident("s", "straggler", "x", report="slow steps"),
        incident("d", "disk_full", "x", report="disk space gone"),
    ]
    kb = mine(history)
    assert kb.similar("sluggish") == []  # no shared word: BM25 finds nothing
    kb.attach(SynonymEmbedder())
    ranked = kb.similar("sluggish", k=2)
    # only the cosine ranking has items: s first (1/(60+1)), then m and d tie at cosine 0, by index: m
    assert [(i.id, score) for i, score in ranked] == [("s", pytest.approx(1 / 61)), ("m", pytest.approx(1 / 62))]
    # a word both rankings agree on gets both shares: 1/61 + 1/61
    assert kb.similar("disk", k=1)[0][1] == pytest.approx(2 / 61)
    loaded = KnowledgeBase.load(kb.save(tmp_path))
    assert loaded.embedder_id == "synonyms-v1" and loaded.incident_vectors == kb.incident_vectors
    assert loaded.similar("sluggish") == []  # a loaded base retrieves lexically until an embedder is attached


def test_mining_with_a_model_titles_entries_and_counts_replies_that_do_not_parse():
    from thoughtgraph.agents.diagnosis.mining import mine_with_model
    from thoughtgraph.backends.scripted import ScriptedBackend, ScriptRule

    history = [
        incident("a", "disk_full", "OSError: [Errno 28] No space left on device"),
        incident("b", "gpu_oom", "torch.OutOfMemoryError: CUDA out of memory"),
    ]
    backend = ScriptedBackend(
        [
            ScriptRule("No space left", ['{"title": "Disk full on save", "summary": "The volume filled up."}']),
            ScriptRule("OutOfMemoryError", ['{"title": ""}']),  # valid JSON, not a valid summary
        ]
    )
    kb = mine_with_model(history, backend)
    titles = {e.signature.split(":")[0]: (e.title, e.summary) for e in kb.entries}
    assert titles["OSError"] == ("Disk full on save", "The volume filled up.")
    assert titles["torch.OutOfMemoryError"][1] == "" and kb.summaries_failed == 1
    assert len(backend.calls) == 2 and all(c.constraint.kind == "json_schema" for c in backend.calls)


def test_a_saved_base_keeps_its_vectors_and_counts(tmp_path):
    kb = mine([incident("m", "gpu_oom", "x", report="memory oom crash"), incident("s", "straggler", "x")])
    kb.attach(SynonymEmbedder())
    kb.summaries_failed = 2
    loaded = KnowledgeBase.load(kb.save(tmp_path))
    assert loaded.entry_vectors == kb.entry_vectors and loaded.summaries_failed == 2
    assert loaded.components == kb.components and loaded.mitigations == kb.mitigations
    assert [s.sources for s in loaded.steps.get("gpu_oom", [])] == [s.sources for s in kb.steps.get("gpu_oom", [])]


def test_priors_weigh_matches_by_score_relative_to_the_best(monkeypatch):
    from thoughtgraph.agents.diagnosis.knowledge import GuideEntry, PastIncident

    kb = KnowledgeBase([], [], {}, {}, {})
    e1 = GuideEntry("e1", "s", {"gpu_oom": 3, "disk_full": 1}, {}, [], {}, [], "")
    e2 = GuideEntry("e2", "s", {"disk_full": 2}, {}, [], {}, [], "")
    i1, i2 = PastIncident("i1", "gpu_oom", "c", ""), PastIncident("i2", "straggler", "c", "")
    monkeypatch.setattr(kb, "retrieve", lambda query: [(e1, 2.0), (e2, 1.0)])
    monkeypatch.setattr(kb, "similar", lambda query: [(i1, 4.0), (i2, 2.0)])
    # entries (best 2.0): gpu_oom .5*1*.75/2 = .1875; disk_full .5*1*.25/2 + .5*.5*1/2 = .1875
    # incidents (best 4.0): gpu_oom .5*1/2 = .25; straggler .5*.5/2 = .125; total .75
    assert kb.priors("q") == pytest.approx(
        {"gpu_oom": 0.4375 / 0.75, "disk_full": 0.1875 / 0.75, "straggler": 0.125 / 0.75}
    )


def test_the_base_keeps_the_most_common_mitigation_and_component_per_cause():
    search = {"step": 1, "tool": "log_search", "arguments": {"pattern": "oom"}, "observation": "x"}
    history = [
        incident("a", "gpu_oom", "RuntimeError: boom 1", component="kv cache", mitigation="m1", actions=[search]),
        incident("b", "gpu_oom", "RuntimeError: boom 2", component="activations", mitigation="m1"),
        incident("c", "gpu_oom", "ValueError: c", component="activations", mitigation="m2"),
    ]
    kb = mine(history)
    assert kb.mitigations == {"gpu_oom": "m1"} and kb.components == {"gpu_oom": "activations"}
    [step] = kb.steps["gpu_oom"]
    assert step.meaning == {"found": {"gpu_oom": "supports"}} and step.sources == ["a"]
    assert sorted(e.document.split("\n")[0] for e in kb.entries) == ["RuntimeError: boom <n>", "ValueError: c"]


def test_drain_templates_replace_the_words_that_vary_in_one_message():
    from thoughtgraph.agents.diagnosis.templates import drain_templates

    lines = [
        "KeyError: missing key encoder.weight in state dict",
        "KeyError: missing key decoder.bias in state dict",
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate <n> GiB",
        "KeyError: missing key head.weight in state dict",
    ]
    templates = drain_templates(lines)
    # three lines of 7 tokens that differ in one token (6/7 similar > 0.4): one cluster, the varying token <*>
    for line in (lines[0], lines[1], lines[3]):
        assert templates[line] == "KeyError: missing key <*> in state dict"
    assert templates[lines[2]] == lines[2]  # alone in its cluster: unchanged
    with pytest.raises(ValueError, match="similarity"):
        drain_templates(lines, similarity=0)


def test_drain_grouping_puts_one_message_with_varying_names_in_one_entry():
    history = [
        incident("a", "checkpoint_corruption", "KeyError: missing key encoder.weight in state dict"),
        incident("b", "checkpoint_corruption", "KeyError: missing key decoder.bias in state dict"),
        incident("c", "version_mismatch", "ImportError: undefined symbol: cudaGetDriverEntryPoint"),
    ]
    by_signature = mine(history)  # the regexes do not mask names: one entry per incident
    assert sorted(len(e.sources) for e in by_signature.entries) == [1, 1, 1]
    by_template = mine(history, grouping="drain")
    entries = {e.signature: e for e in by_template.entries}
    assert entries["KeyError: missing key <*> in state dict"].sources == ["a", "b"]
    assert entries["KeyError: missing key <*> in state dict"].hypotheses == {"checkpoint_corruption": 2}
    assert len(entries) == 2
    with pytest.raises(ValueError, match="grouping must be one of signature, drain"):
        mine(history, grouping="words")
