"""Diagnosis on the real embedded model, end to end, and the chat driven as a person would (pexpect): start,
approve, kill the process, resume with --session, nothing lost."""

import json
import os
import signal
import sys
from pathlib import Path

import pexpect
import pytest

from thoughtgraph.agents.diagnosis import diagnose_async, load_incidents
from thoughtgraph.agents.diagnosis.checks import CHECKS
from thoughtgraph.agents.diagnosis.incidents import HELDOUT

pytestmark = pytest.mark.integration
THOUGHTGRAPH = str(Path(sys.executable).parent / "thoughtgraph")


async def test_corpus_incidents_diagnosed_on_the_embedded_model(llama_backend):
    heldout, _ = load_incidents(HELDOUT)
    for incident in [i for i in heldout if i.id in ("straggler-08", "poisoned_update-10")]:
        public = incident.public()
        diagnosis = await diagnose_async(
            public.report, workload=public.workload, artifacts=public.artifacts, backend=llama_backend, approve=True
        )
        report = diagnosis.report
        assert report["model_calls"] == 3  # intake, hypothesise, report; a reply that did not parse is counted
        assert 0 <= report["parse_failures"] <= 3
        assert report["category"] in [h["category"] for h in report["hypotheses"]]
        assert 2 <= len(report["hypotheses"]) <= 5 and 0 < report["confidence"] <= 1
        assert report["summary"] and report["mitigation"]
        ran = {e["check"] for e in report["evidence"]}
        assert ran and ran <= set(CHECKS)  # the report cites the steps that ran ...
        for evidence in report["evidence"]:  # ... and the registry tools each one called
            assert evidence["summary"] and all(tool in report["registry_tools"] for tool in evidence["tools"])
        assert report["registry_tools"]  # straggler: LB-BSP; poisoned update: Pisces weights


def ambiguous_round(path: Path) -> None:
    """Skewed labels, stale clients and diverging honest clients (drift) next to one sign-flipped update
    (poisoning): the first review cannot settle it, so the quarantine step - which changes state - is asked."""
    import random

    r = random.Random(5)
    base = [r.gauss(0, 1) for _ in range(16)]
    centres = [[r.gauss(0, 1) for _ in range(16)] for _ in range(4)]
    clients = []
    for i in range(8):
        update = [c + r.gauss(0, 0.3) for c in centres[i % 4]] if i != 2 else [-12 * b for b in base]
        labels = [300 if k in (i % 10, (i + 3) % 10) else 3 for k in range(10)]
        clients.append(
            {"id": f"c{i}", "samples": sum(labels), "staleness": [0, 7, 1, 9, 0, 6, 2, 8][i], "label_counts": labels,
             "update": [round(u, 4) for u in update]}
        )  # fmt: skip
    path.write_text(json.dumps({"clients": clients}))


def test_chat_session_approve_kill_and_resume(tmp_path):
    updates = tmp_path / "round.json"
    ambiguous_round(updates)
    db = tmp_path / "sessions.sqlite"
    env = {**os.environ, "COLUMNS": "200"}
    command = f"{THOUGHTGRAPH} diagnose --no-model --db {db} --attach round.json={updates}"
    chat = pexpect.spawn(command, env=env, encoding="utf-8", timeout=60)
    chat.expect("finish with an empty line")
    chat.sendline("Global accuracy dropped from 0.8 to 0.4 over the last rounds.")
    chat.sendline("")
    chat.expect(r"Session (\w+) \(resume")
    session = chat.match.group(1)
    # the report does not say what kind of job this is: the one clarifying question
    chat.expect(r"Question: What kind of job is this")
    chat.sendline("federated learning with flower")
    chat.expect(r"ran fl_update_review")
    chat.expect(r"CHANGES STATE: exclude the flagged clients")
    chat.expect(r"Approve\? \[y/N\]")
    # the person walks away: the process is killed at the prompt
    chat.kill(signal.SIGKILL)
    chat.close()
    listing = pexpect.run(f"{THOUGHTGRAPH} diagnose --list --db {db}", env=env, encoding="utf-8")
    assert f"{session}  waiting for approval" in listing
    resumed = pexpect.spawn(
        f"{command.split(' --attach')[0]} --session {session}", env=env, encoding="utf-8", timeout=60
    )
    resumed.expect("Resuming session")
    resumed.expect(r"\(earlier\) fl_update_review: 1 of 8 update\(s\) are outliers \['c2'\]")  # nothing lost
    resumed.expect(r"Approve\? \[y/N\]")
    resumed.sendline("y")
    resumed.expect("approved")
    resumed.expect(r"ran quarantine_clients\(.*\"clients\": \[\"c2\"\]")
    resumed.expect(r"Root cause: poisoned_update")
    resumed.expect("Follow-up question")
    resumed.sendline("")
    resumed.expect(pexpect.EOF)
    listing = pexpect.run(f"{THOUGHTGRAPH} diagnose --list --db {db}", env=env, encoding="utf-8")
    assert f"{session}  done: poisoned_update" in listing
    assert listing.count("waiting for") == 0
    unknown = pexpect.run(
        f"{THOUGHTGRAPH} diagnose --session nope --db {db}", env=env, encoding="utf-8", withexitstatus=True
    )
    assert unknown[1] == 2 and "no diagnosis session 'nope'" in unknown[0]
    deleted = pexpect.run(f"{THOUGHTGRAPH} diagnose --delete {session} --db {db}", env=env, encoding="utf-8")
    assert f"deleted session {session}" in deleted
    assert "no diagnosis sessions" in pexpect.run(
        f"{THOUGHTGRAPH} diagnose --list --db {db}", env=env, encoding="utf-8"
    )


def test_llamacpp_embeddings_join_retrieval_and_are_stored_by_mining(tmp_path):
    import numpy as np

    from thoughtgraph.agents.diagnosis.embeddings import LlamaCppEmbedder
    from thoughtgraph.agents.diagnosis.knowledge import KnowledgeBase

    embedder = LlamaCppEmbedder("llamacpp:smollm2")
    vectors = embedder.embed(["NCCL watchdog timeout on rank 3", "NCCL watchdog timed out on rank 5", "disk is full"])
    assert vectors.shape[0] == 3 and np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # near-paraphrases are closer than unrelated text
    history = tmp_path / "history.jsonl"
    heldout, _ = load_incidents(HELDOUT)
    history.write_text("".join(i.model_dump_json() + "\n" for i in heldout[:6]))
    mined = pexpect.run(
        f"{THOUGHTGRAPH} diagnose mine {history} --out {tmp_path / 'kb'} --embeddings llamacpp:smollm2",
        encoding="utf-8", withexitstatus=True, timeout=120,
    )  # fmt: skip
    assert mined[1] == 0, mined[0]
    kb = KnowledgeBase.load(tmp_path / "kb")
    assert kb.embedder_id == embedder.id and len(kb.incident_vectors) == 6
    embedded = []

    class Counting:  # the same embedder, counting what it is asked to embed
        id = embedder.id

        def embed(self, texts):
            embedded.extend(texts)
            return embedder.embed(texts)

    kb.attach(Counting())  # same embedder id: the stored vectors are used as they are, nothing re-embedded
    assert embedded == [] and kb.incident_vectors == KnowledgeBase.load(tmp_path / "kb").incident_vectors
    assert kb.similar(heldout[0].report, k=2)[0][0].id == heldout[0].id
    assert embedded == [heldout[0].report]  # only the query was embedded
