"""The runner and reports with the ScriptedBackend test double: exact arithmetic on a designed set."""

import asyncio
import json
from pathlib import Path

import pytest

from thoughtgraph.backends.scripted import ScriptedBackend, ScriptRule
from thoughtgraph.evals.compare import format_table, load_results, plot, rows
from thoughtgraph.evals.report import wilson_interval
from thoughtgraph.evals.runner import EvalConfig, read_samples, run_eval

# Ten problems "what is k + k?" with gold 2k. The double answers 7 right, 2 wrong, and has no
# rule for the last one, which therefore fails.
ANSWERS = {1: 2, 2: 4, 3: 6, 4: 8, 5: 10, 6: 12, 7: 14, 8: 99, 9: 0}


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    (folder / "gsm8k").mkdir(parents=True)
    lines = [json.dumps({"question": f"What is {k} + {k}?", "answer": f"#### {2 * k}"}) for k in range(1, 11)]
    (folder / "gsm8k" / "test.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def scripted():
    return ScriptedBackend(
        [ScriptRule(f"What is {k} \\+ {k}\\?", [f"{k} plus {k}. The answer is {v}."]) for k, v in ANSWERS.items()]
    )


def test_wilson_interval_matches_reference_values():
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    assert wilson_interval(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-5)
    assert wilson_interval(10, 10) == pytest.approx((0.72247, 1.0), abs=1e-5)
    assert wilson_interval(0, 0) == (0.0, 0.0)


def test_the_interval_always_holds_the_observed_share_and_a_zero_run_plots():
    # 0 of 3: the centre minus the half-width is 0 on paper and 1e-17 in floats, which made matplotlib refuse a
    # negative error bar (found by running the evals page of the docs)
    for total in range(1, 101):
        for successes in range(total + 1):
            low, high = wilson_interval(successes, total)
            assert low <= successes / total <= high
    assert wilson_interval(0, 3)[0] == 0.0 and wilson_interval(3, 3)[1] == 1.0


def test_accuracy_counts_and_interval_are_exact(data, tmp_path):
    config = EvalConfig(dataset="gsm8k", data_dir=str(data), out=str(tmp_path / "runs"), run_name="r")
    results = asyncio.run(run_eval(config, backend=scripted(), progress=False))
    assert results["counts"] == {"solved": 7, "wrong": 2, "failed": 1}
    assert results["accuracy"]["value"] == 0.7
    assert results["accuracy"]["ci95"] == pytest.approx(list(wilson_interval(7, 10)))
    assert results["accuracy_strict"]["value"] == 0.7
    assert results["usage"]["total"]["calls"] == 9  # the failed problem's call never completed
    assert results["prompt_versions"] == {"cot/solve": 1}
    samples = read_samples(tmp_path / "runs" / "r" / "samples.jsonl")
    failed = [s for s in samples if s["status"] == "failed"]
    assert [s["id"] for s in failed] == ["gsm8k/test/9"] and "no rule matching" in failed[0]["error"]
    on_disk = json.loads((tmp_path / "runs" / "r" / "results.json").read_text())
    assert on_disk["counts"] == results["counts"] and on_disk["method_config"]["answer_pattern"]
    lm_eval = on_disk["results"]["gsm8k"]
    assert lm_eval["exact_match,none"] == 0.7 and lm_eval["exact_match,strict-match"] == 0.7
    assert lm_eval["exact_match_stderr,none"] == pytest.approx((0.7 * 0.3 / 9) ** 0.5)
    assert on_disk["n-samples"]["gsm8k"] == {"original": 10, "effective": 10}


def test_rerun_resumes_and_only_solves_the_new_problems(data, tmp_path, capsys):
    out = str(tmp_path / "runs")
    first = scripted()
    asyncio.run(run_eval(EvalConfig("gsm8k", data_dir=str(data), out=out, run_name="r", limit=4), backend=first,
                         progress=False))  # fmt: skip
    second = scripted()
    results = asyncio.run(
        run_eval(EvalConfig("gsm8k", data_dir=str(data), out=out, run_name="r", limit=6), backend=second,
                 progress=False)
    )  # fmt: skip
    assert len(first.calls) == 4 and len(second.calls) == 2
    assert results["n_samples"] == 6 and results["counts"]["solved"] == 6
    assert "4 of 6 problems already done" in capsys.readouterr().err


def test_a_line_cut_short_by_a_kill_is_dropped_and_the_problem_redone(data, tmp_path):
    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    complete = {"id": "gsm8k/test/0", "status": "ok", "correct": True, "usage": {}}
    (run_dir / "samples.jsonl").write_text(json.dumps(complete) + "\n" + '{"id": "gsm8k/test/1", "sta')
    backend = scripted()
    config = EvalConfig("gsm8k", data_dir=str(data), out=str(tmp_path / "runs"), run_name="r", limit=3)
    results = asyncio.run(run_eval(config, backend=backend, progress=False))
    assert len(backend.calls) == 2
    ids = [s["id"] for s in read_samples(run_dir / "samples.jsonl")]
    assert sorted(ids) == ["gsm8k/test/0", "gsm8k/test/1", "gsm8k/test/2"]
    assert results["n_samples"] == 3


def test_compare_table_and_plot(data, tmp_path):
    out = tmp_path / "runs"
    for name, limit in (("a", 4), ("b", 10)):
        config = EvalConfig("gsm8k", data_dir=str(data), out=str(out), run_name=name, limit=limit)
        asyncio.run(run_eval(config, backend=scripted(), progress=False))
    loaded = [load_results(out / "a"), load_results(out / "b")]
    table = rows(loaded)
    assert [r["accuracy"] for r in table] == ["100.0%", "70.0%"]
    text = format_table(table)
    assert text.splitlines()[0].split()[:3] == ["run", "method", "backend"]
    image = plot(loaded, tmp_path / "plot.png")
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileNotFoundError, match=r"no results\.json"):
        load_results(tmp_path)


def test_failed_problems_are_retried_on_rerun_and_logged_once(data, tmp_path):
    out = str(tmp_path / "runs")
    config = EvalConfig("gsm8k", data_dir=str(data), out=out, run_name="r")
    first = asyncio.run(run_eval(config, backend=scripted(), progress=False))
    assert first["counts"]["failed"] == 1
    fixed = scripted()
    fixed.rules.append(ScriptRule("What is 10 \\+ 10\\?", ["The answer is 20."]))
    second = asyncio.run(run_eval(config, backend=fixed, progress=False))
    assert len(fixed.calls) == 1  # only the failed problem ran again
    assert second["counts"] == {"solved": 8, "wrong": 2, "failed": 0}
    ids = [s["id"] for s in read_samples(tmp_path / "runs" / "r" / "samples.jsonl")]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 10


def test_run_folders_are_named_by_the_model_a_server_serves_not_its_address():
    def name(backend: str) -> str:
        return EvalConfig(dataset="gsm8k", method="cot", backend=backend).name

    one = name("openai:http://127.0.0.1:8001/v1#Qwen/Qwen2.5-Math-1.5B-Instruct")
    assert one == name("openai:http://10.0.0.2:9000/v1,http://10.0.0.3:9000/v1#Qwen/Qwen2.5-Math-1.5B-Instruct")
    assert one == "gsm8k-test-cot-openai-Qwen-Qwen2.5-Math-1.5B-Instruct-seed0"
    assert name("llamacpp:smollm2") == "gsm8k-test-cot-llamacpp-smollm2-seed0"  # in-process specs are unchanged


def test_datasets_set_the_fields_chain_budget_and_the_run_reports_its_concurrency(data, tmp_path):
    config = EvalConfig(dataset="gsm8k", data_dir=str(data), out=str(tmp_path / "runs"), run_name="d", limit=3)
    results = asyncio.run(run_eval(config, backend=scripted(), progress=False))
    assert results["method_config"]["chain_tokens"] == 256  # lm-evaluation-harness's gsm8k budget, not cot's 512
    assert results["concurrency"]["mode"] == "adaptive" and results["concurrency"]["final"] >= 1
    assert results["answer_asked_separately"] == 0  # every chain stated its answer
    mine = EvalConfig(dataset="gsm8k", data_dir=str(data), out=str(tmp_path / "runs"), run_name="m", limit=2,
                      concurrency=2, method_options={"chain_tokens": 100})  # fmt: skip
    results = asyncio.run(run_eval(mine, backend=scripted(), progress=False))
    assert results["method_config"]["chain_tokens"] == 100 and results["concurrency"] == {"mode": "fixed", "final": 2}


def test_a_gsm8k_chain_ends_at_lm_evals_stop_sequence_and_an_option_overrides_it(data, tmp_path):
    # the model starts a question of its own after its steps: lm-eval's gsm8k stops at "Question:", so do we
    rambler = ScriptedBackend(
        [ScriptRule("only the final answer", ["2"])],
        default="1 plus 1 makes 2.\nQuestion: what is 5 + 5? The answer is 10.",
    )
    config = EvalConfig(dataset="gsm8k", data_dir=str(data), out=str(tmp_path / "runs"), run_name="s", limit=1)
    results = asyncio.run(run_eval(config, backend=rambler, progress=False))
    assert list(results["method_config"]["chain_stop"]) == ["Question:"]
    assert rambler.calls[0].stop == ("Question:",)
    [sample] = read_samples(tmp_path / "runs" / "s" / "samples.jsonl")
    assert sample["reasoning"] == "1 plus 1 makes 2." and sample["prediction"] == "2" and sample["correct"]
    assert results["answer_asked_separately"] == 1  # the cut chain stated no answer
    mine = EvalConfig(dataset="gsm8k", data_dir=str(data), out=str(tmp_path / "runs"), run_name="o", limit=1,
                      method_options={"chain_stop": []})  # fmt: skip
    rambler.calls.clear()
    results = asyncio.run(run_eval(mine, backend=rambler, progress=False))
    [sample] = read_samples(tmp_path / "runs" / "o" / "samples.jsonl")
    assert rambler.calls[0].stop == () and sample["prediction"] == "10" and not sample["correct"]


@pytest.mark.parametrize("method", ["sc", "bon"])
def test_sampled_chains_also_end_at_the_datasets_stop_sequence(data, tmp_path, method):
    backend = ScriptedBackend([ScriptRule("What is 1", ["1 plus 1 is 2. The answer is 2."])], default="0.9")
    config = EvalConfig(dataset="gsm8k", method=method, data_dir=str(data), out=str(tmp_path / "runs"),
                        run_name=method, limit=1, method_options={"samples": 2})  # fmt: skip
    asyncio.run(run_eval(config, backend=backend, progress=False))
    chains = [call for call in backend.calls if call.n == 2]
    assert len(chains) == 1 and chains[0].stop == ("Question:",)


def test_an_empty_stop_string_is_refused_naming_the_option():
    from thoughtgraph.reasoning.api import make_config

    for method in ("cot", "sc", "bon"):
        with pytest.raises(ValueError, match="chain_stop entries must be non-empty"):
            make_config(method, chain_stop=["Question:", ""])


def test_problems_whose_answer_was_asked_for_separately_are_counted(data, tmp_path):
    mute = ScriptedBackend([ScriptRule("only the final answer", ["4"])], default="I add them up.")
    config = EvalConfig(dataset="gsm8k", data_dir=str(data), out=str(tmp_path / "runs"), run_name="a", limit=2)
    results = asyncio.run(run_eval(config, backend=mute, progress=False))
    assert results["answer_asked_separately"] == 2 and results["parse_failures"] == 2


def test_the_benchmarks_lm_eval_prompt_asks_what_lm_evals_gsm8k_asks(data, tmp_path, monkeypatch):
    # bench/vs_lmeval.py compares the harnesses at equal work with this override of cot's prompt
    import lm_eval
    import yaml

    from thoughtgraph.prompts import load_prompt

    folder = Path(__file__).resolve().parents[2] / "bench" / "prompts" / "lm_eval_gsm8k"
    task = yaml.safe_load((Path(lm_eval.__file__).parent / "tasks" / "gsm8k" / "gsm8k.yaml").read_text())
    question = "What is 1 + 1?"
    expected = task["doc_to_text"].replace("{{question}}", question)  # lm-eval's: "Question: ...\nAnswer:"
    assert load_prompt("cot/solve", folder=folder).render(question=question) == [("user", expected)]
    # through a run: the override reaches the chain's request, and results record its version
    backend = ScriptedBackend([], default="1 plus 1. The answer is 2.")
    config = EvalConfig(dataset="gsm8k", data_dir=str(data), out=str(tmp_path / "runs"), run_name="p", limit=1)
    monkeypatch.setenv("THOUGHTGRAPH_PROMPTS", str(folder))
    results = asyncio.run(run_eval(config, backend=backend, progress=False))
    assert results["prompt_versions"]["cot/solve"] == "lm-eval-gsm8k-0shot"
    assert [(m.role, m.content) for m in backend.calls[0].messages] == [("user", expected)]
