"""The diagnosis graph's mechanics, exactly: parallel verification, dependency order, approval interrupts,
the judge's stopping rules, clarifying questions, and malformed agent output. Checks here are test doubles
registered for the test (a probe that sleeps in its thread, as a remote query would, and reports a signal)."""

import json
import time

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from thoughtgraph.agents.diagnosis import NeedsInput, UnknownSession, diagnose_async, stream_diagnosis
from thoughtgraph.agents.diagnosis.checks import CHECKS, Check, CheckResult
from thoughtgraph.agents.diagnosis.graph import DiagnosisRuntime, Limits, build_graph
from thoughtgraph.agents.diagnosis.knowledge import GuideEntry, KnowledgeBase, StepTemplate
from thoughtgraph.agents.diagnosis.llm import DiagnosisAgents
from thoughtgraph.agents.runtime import Budget
from thoughtgraph.backends.scripted import ScriptedBackend, ScriptRule

REPORT = "training throughput dropped, steps are slow"
ARTIFACTS = {"train.log": "INFO step 1\nINFO step 2"}


def probe(arguments, artifacts):
    time.sleep(arguments.get("sleep", 0.0))
    return CheckResult(f"probe {arguments['name']}", {"s": bool(arguments.get("present", True))}, {"flagged": ["x"]})


@pytest.fixture(autouse=True)
def probe_check(monkeypatch):
    monkeypatch.setitem(CHECKS, "probe", Check("probe", probe, "log", {}, description="test probe"))
    monkeypatch.setitem(CHECKS, "change", Check("change", probe, "log", {}, read_only=False, description="changes"))


def step(name, meaning, *, sleep=0.0, present=True, check="probe", depends_on=()):
    arguments = {"name": name, "sleep": sleep, "present": present}
    return StepTemplate(check, arguments, meaning, 0.1, check == "probe", list(depends_on))


def knowledge(steps: dict[str, list[StepTemplate]], hypotheses=None) -> KnowledgeBase:
    """One guide entry matching REPORT with priors straggler 3 : dataloader_stall 1 (so 0.75 / 0.25)."""
    entry = GuideEntry(
        "tsg-1", "<no error line>", hypotheses or {"straggler": 3, "dataloader_stall": 1}, {}, [], {}, [], REPORT
    )
    return KnowledgeBase([entry], [], steps, {"straggler": "drain the node"}, {"straggler": "worker node"})


async def run(kb, **options):
    return await diagnose_async(REPORT, workload={"kind": "training"}, artifacts=ARTIFACTS, kb=kb, **options)


def observations(diagnosis):
    return {e["summary"].removeprefix("probe "): e for e in diagnosis.evidence}


async def test_independent_steps_run_in_parallel_and_sequential_runs_them_one_by_one(monkeypatch):
    neutral = {"s": {"gpu_oom": "supports"}}  # about a cause not on the table: no effect on the posteriors
    kb = knowledge({"straggler": [step("a", neutral, sleep=0.3), step("b", neutral, sleep=0.3)]})
    started = {}

    def timed(arguments, artifacts):
        started[arguments["name"]] = time.time()
        return probe(arguments, artifacts)

    monkeypatch.setitem(CHECKS, "probe", Check("probe", timed, "log", {}))
    parallel = await run(kb, limits=Limits(max_iterations=1))
    assert parallel.report["tool_calls"] == 2 and parallel.status == "iteration budget spent"
    assert abs(started["a"] - started["b"]) < 0.2  # both started before either (0.3 s) finished
    assert parallel.report["verification_seconds"] < parallel.report["verification_step_seconds"]
    sequential = await run(kb, limits=Limits(max_iterations=1), variant="sequential")
    assert abs(started["a"] - started["b"]) >= 0.3  # the second started after the first ended
    assert sequential.report["verification_seconds"] >= sequential.report["verification_step_seconds"] * 0.95
    assert [e["summary"] for e in sequential.evidence] == [e["summary"] for e in parallel.evidence]


async def test_a_dependent_step_waits_for_its_dependency(monkeypatch):
    order = []

    def recording(arguments, artifacts):
        order.append(arguments.get("name", "first"))
        return CheckResult("first", {"s": False}, {})

    monkeypatch.setitem(CHECKS, "first", Check("first", recording, "log", {}))
    monkeypatch.setitem(CHECKS, "probe", Check("probe", lambda a, f: recording(a, f) and probe(a, f), "log", {}))
    first = StepTemplate("first", {}, {"s": {"gpu_oom": "supports"}}, 0.1, True, [])
    second = step("second", {"s": {"gpu_oom": "supports"}}, depends_on=["first"])
    diagnosis = await run(knowledge({"straggler": [second, first]}))
    assert order == ["first", "second"]
    waves = {e["check"]: e for e in diagnosis.evidence}
    assert diagnosis.report["iterations"] == 2 and diagnosis.report["tool_calls"] == 2
    assert [e["summary"] for e in diagnosis.evidence] == ["first", "probe second"]
    assert waves["first"]["step"].startswith("first#")


async def test_a_confirming_signal_ends_the_loop_with_that_cause():
    kb = knowledge(
        {"straggler": [step("a", {"s": {"straggler": "confirms"}})], "dataloader_stall": [step("later", {})]}
    )
    diagnosis = await run(kb)
    # 0.675 * 12 = 8.1 against 0.225 and 0.1: 8.1 / 8.425 = 0.9614
    assert diagnosis.category == "straggler" and diagnosis.status == "confirmed"
    assert diagnosis.confidence == pytest.approx(8.1 / 8.425, abs=1e-4)
    assert diagnosis.component == "worker node" and diagnosis.mitigation == "drain the node"
    assert diagnosis.report["iterations"] == 1
    evidence = observations(diagnosis)["a"]
    assert evidence["effects"][0]["effect"] == "confirms" and evidence["effects"][0]["present"]


async def test_all_hypotheses_refuted_ends_the_loop():
    both = {"s": {"straggler": "confirms", "dataloader_stall": "confirms"}}
    kb = knowledge({"straggler": [step("a", both, present=False), step("b", both, present=False)]})
    diagnosis = await run(kb)
    # each hypothesis x0.15 twice: 0.675*0.0225, 0.225*0.0225, unknown 0.1 -> unknown 0.8316
    assert diagnosis.status == "refuted" and diagnosis.report["iterations"] == 1


async def test_the_step_budget_and_an_empty_plan_end_the_loop():
    chain = [step("a", {}), step("b", {}), step("c", {})]
    capped = await run(knowledge({"straggler": chain}), limits=Limits(max_steps=2))
    assert capped.report["tool_calls"] == 2 and capped.status == "step budget spent"
    nothing = await run(knowledge({}))
    assert nothing.report["tool_calls"] == 0 and nothing.status == "no steps left"


async def test_a_changing_step_waits_for_approval_and_a_decline_skips_it(monkeypatch):
    kb = knowledge({"straggler": [step("look", {}), step("act", {"s": {"straggler": "confirms"}}, check="change")]})
    asked = []

    def approve(steps):
        asked.append([s["check"] for s in steps])
        return {s["id"]: False for s in steps}

    declined = await run(kb, approve=approve)
    assert asked == [["change"]]
    assert [e["check"] for e in declined.evidence] == ["probe"]
    assert declined.report["declined"] == [s for s in declined.report["declined"] if s.startswith("change#")] != []
    assert declined.actions == [] and declined.category == "straggler" and declined.status == "no steps left"
    approved = await run(kb, approve=True)
    assert sorted(e["check"] for e in approved.evidence) == ["change", "probe"]
    assert [a["check"] for a in approved.actions] == ["change"] and approved.status == "confirmed"


async def test_approval_interrupt_has_no_side_effect_and_resumes_from_the_checkpoint(monkeypatch):
    ran = []

    def recording(arguments, artifacts):
        ran.append(arguments["name"])
        return probe(arguments, artifacts)

    monkeypatch.setitem(CHECKS, "change", Check("change", recording, "log", {}, read_only=False))
    kb = knowledge({"straggler": [step("act", {"s": {"straggler": "confirms"}}, check="change")]})
    graph = build_graph(DiagnosisRuntime(kb, None), InMemorySaver())
    config = {"configurable": {"thread_id": "t1"}}
    incident = {"id": "i", "report": REPORT, "workload": {"kind": "training"}, "artifacts": ARTIFACTS}
    await graph.ainvoke({"incident": incident, "settings": {}}, config)
    state = await graph.aget_state(config)
    [pending] = state.interrupts
    assert pending.value["kind"] == "approval" and pending.value["steps"][0]["check"] == "change"
    assert ran == [] and state.next == ("approve",)
    await graph.ainvoke(Command(resume=True), config)
    final = await graph.aget_state(config)
    assert ran == ["act"] and final.values["report"]["category"] == "straggler" and not final.next


async def test_one_clarifying_question_when_the_workload_kind_is_missing():
    kb = knowledge({})
    question = "It broke with a weird message."
    events = [e async for e in stream_diagnosis(question, artifacts=ARTIFACTS, kb=kb, answer="federated learning")]
    questions = [e for e in events if e["kind"] == "question"]
    assert len(questions) == 1 and "training, fine-tuning, inference or federated" in questions[0]["question"]
    report = events[-1]["report"]
    assert report["questions"] == 1
    with pytest.raises(NeedsInput, match="asks"):
        await diagnose_async("It broke with a weird message.", artifacts=ARTIFACTS, kb=kb)
    # with the kind given (or named in the report) nothing is asked
    told = [e async for e in stream_diagnosis("Our training run broke.", artifacts=ARTIFACTS, kb=kb)]
    assert told[-1]["report"]["questions"] == 0
    assert not [e for e in told if e["kind"] == "question"]


def scripted(hypotheses_reply):
    rules = [
        ScriptRule("You triage", [json.dumps({"workload_kind": "training", "symptoms": ["slow"]})]),
        ScriptRule("You diagnose failed", [hypotheses_reply]),
        ScriptRule("conclusion of an incident", [json.dumps({"summary": "The slow node held everyone back."})]),
    ]
    return ScriptedBackend(rules)


async def test_the_model_raises_the_causes_it_proposes_and_writes_the_summary():
    reply = json.dumps(
        {"hypotheses": [{"category": "dataloader_stall", "evidence_for": "slow", "evidence_against": ""}]}
    )
    backend = scripted(reply)
    diagnosis = await run(knowledge({}), backend=backend)
    table = {h["category"]: h for h in diagnosis.report["hypotheses"]}
    # priors 0.75 / 0.25, plus 0.15 for the proposed cause: 0.75 / 0.40 of 1.15, times 0.9
    assert table["dataloader_stall"]["posterior"] == pytest.approx(0.9 * 0.40 / 1.15)
    assert table["dataloader_stall"]["evidence_for"][-1] == "model: slow"
    assert diagnosis.summary == "The slow node held everyone back."
    assert diagnosis.report["model_calls"] == 3 and diagnosis.report["parse_failures"] == 0
    assert len(backend.calls) == 3 and all(c.constraint is not None for c in backend.calls)


@pytest.mark.parametrize(
    "reply",
    ['{"hypotheses": [{"category": "cosmic_rays"}]}', '{"hypotheses": []}', '{"nothing": 1}', "[1, 2]"],
)
async def test_malformed_agent_output_is_counted_and_the_run_goes_on(reply):
    diagnosis = await run(
        knowledge({"straggler": [step("a", {"s": {"straggler": "confirms"}})]}), backend=scripted(reply)
    )
    assert diagnosis.report["parse_failures"] == 1 and diagnosis.category == "straggler"
    assert {h["category"] for h in diagnosis.report["hypotheses"]} == {"straggler", "dataloader_stall"}


async def test_a_spent_model_budget_falls_back_without_the_model(monkeypatch):
    backend = scripted("{}")
    original = DiagnosisAgents.__init__

    def tiny_budget(self, backend, budget):
        original(self, backend, Budget(max_calls=1))

    monkeypatch.setattr(DiagnosisAgents, "__init__", tiny_budget)
    diagnosis = await run(knowledge({}), backend=backend)
    assert len(backend.calls) == 1 and diagnosis.report["parse_failures"] == 2
    assert diagnosis.summary.startswith("Most likely straggler")


async def test_bad_input_gets_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="empty report"):
        await diagnose_async("   ", kb=knowledge({}))
    with pytest.raises(UnknownSession, match="no diagnosis session 'nope'"):
        await diagnose_async("", session="nope", kb=knowledge({}), db=tmp_path / "s.sqlite")
    with pytest.raises(ValueError, match="variant must be one of"):
        await run(knowledge({}), variant="fast")


async def test_a_tool_given_garbage_is_an_error_observation_in_the_report():
    kb = knowledge({})  # no steps on record: the catalogue's checks for the hypotheses run
    artifacts = {"steps.csv": "worker,step,step_time\n0,0,fast\n1,0,1.0", "train.log": "INFO"}
    diagnosis = await diagnose_async(REPORT, workload={"kind": "training"}, artifacts=artifacts, kb=kb)
    errors = [e for e in diagnosis.evidence if e["error"]]
    assert errors and "expected a number, got 'fast'" in errors[0]["summary"]


async def test_sessions_survive_in_sqlite_and_resume_a_pending_approval(tmp_path):
    kb = knowledge({"straggler": [step("act", {"s": {"straggler": "confirms"}}, check="change")]})
    db = tmp_path / "sessions.sqlite"

    def never(steps):
        raise KeyboardInterrupt  # the user walks away at the approval prompt

    with pytest.raises(KeyboardInterrupt):
        await diagnose_async(
            REPORT, workload={"kind": "training"}, artifacts=ARTIFACTS, kb=kb, db=db, session="s1", approve=never
        )
    resumed = await diagnose_async(session="s1", kb=kb, db=db, approve=True)
    assert resumed.category == "straggler" and [e["check"] for e in resumed.evidence] == ["change"]
    again = await diagnose_async(session="s1", kb=kb, db=db)  # a finished session answers with its report
    assert again.report == resumed.report


async def test_follow_up_questions_are_answered_from_the_report_and_kept_in_the_session():
    from thoughtgraph.agents.diagnosis.api import DiagnosisSession, make_runtime

    backend = ScriptedBackend(
        [ScriptRule("You answer questions about an incident", ["Drain the slow node first."])], default="{}"
    )
    saver = InMemorySaver()
    kb = knowledge({"straggler": [step("a", {"s": {"straggler": "confirms"}})]})
    events = [
        e async for e in stream_diagnosis(
            REPORT, workload={"kind": "training"}, artifacts=ARTIFACTS, kb=kb, backend=backend, session="f1",
            checkpointer=saver,
        )
    ]  # fmt: skip
    assert events[-1]["kind"] == "report"
    session = DiagnosisSession("f1", make_runtime({}, backend=backend, kb=kb), saver)
    assert await session.add_followup("What should I do first?") == "Drain the slow node first."
    asked = backend.calls[-1].messages[-1].content
    assert "Root cause: straggler" in asked and "What should I do first?" in asked
    state = await session.state()
    assert state.values["followups"] == [
        {"question": "What should I do first?", "answer": "Drain the slow node first."}
    ]
