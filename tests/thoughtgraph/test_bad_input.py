"""Bad input on the command line gets a clear, named error and exit code 2 (1 when every problem of a run
failed), never a traceback. The rows come from issue 14's table."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from thoughtgraph.cli import app


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "script.yaml"
    path.write_text('rules:\n  - match: "."\n    responses: ["The answer is 4."]\n')
    return str(path)


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data" / "gsm8k"
    folder.mkdir(parents=True)
    rows = [{"question": f"What is {k} + {k}?", "answer": f"#### {2 * k}"} for k in (1, 2, 3)]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(tmp_path / "data")


def run(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output + (getattr(result, "stderr", "") or "")


def test_a_cache_that_is_not_sqlite_or_is_a_folder(script, tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database at all " * 100)
    code, output = run("solve", "q?", "--backend", f"scripted:{script}", "--cache", str(junk))
    assert code == 2 and str(junk) in output and "move it aside or run without a cache" in output
    assert "Traceback" not in output
    code, output = run("solve", "q?", "--backend", f"scripted:{script}", "--cache", str(tmp_path))
    assert code == 2 and "is a folder" in output


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("samples=abc", "option 'samples' of SelfConsistencyConfig needs int, got 'abc'"),
        ("samples=[1, 2]", "needs int, got [1, 2]"),
        ("samples=null", "needs int, got None"),
        ("temperature=hot", "needs float, got 'hot'"),
        ("beams=3", "has no option(s) ['beams']"),
    ],
)
def test_method_options_of_the_wrong_type_or_name(script, option, message):
    code, output = run("solve", "q?", "--method", "sc", "--backend", f"scripted:{script}", "--option", option)
    assert code == 2 and message in output


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1"])
def test_max_seconds_that_is_not_a_positive_finite_number(script, value):
    code, output = run("solve", "q?", "--backend", f"scripted:{script}", "--max-seconds", value)
    assert code == 2 and "max_seconds must be positive and finite" in output


def test_html_trace_folders_are_created_and_unwritable_paths_named(script, tmp_path):
    trace = tmp_path / "new" / "folder" / "t.html"
    code, output = run("solve", "q?", "--backend", f"scripted:{script}", "--html", str(trace))
    assert code == 0 and trace.is_file()
    code, output = run("solve", "q?", "--backend", f"scripted:{script}", "--html", "/proc/no/such/t.html")
    assert code == 2 and "cannot write the trace to /proc/no/such/t.html" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--run-name", "../../x"), "must be a plain name"),
        (("--run-name", "/abs"), "must be a plain name"),
        (("--limit", "0"), "no problems selected"),
        (("--offset", "99"), "no problems selected"),
    ],
)
def test_eval_selection_and_run_names(script, data, tmp_path, args, message):
    out = str(tmp_path / "runs")
    code, output = run(
        "eval", "run", "--dataset", "gsm8k", "--backend", f"scripted:{script}", "--data-dir", data, "--out", out,
        "--no-progress", *args,
    )  # fmt: skip
    assert code == 2 and message in output
    assert not (tmp_path / "x").exists()


def test_eval_out_naming_a_file(script, data, tmp_path):
    out = tmp_path / "runs"
    out.write_text("a file")
    code, output = run(
        "eval", "run", "--dataset", "gsm8k", "--backend", f"scripted:{script}", "--data-dir", data,
        "--out", str(out), "--no-progress",
    )  # fmt: skip
    assert code == 2 and "is a file; give a folder" in output


def test_an_eval_in_which_every_problem_failed_exits_non_zero(data, tmp_path):
    silent = tmp_path / "silent.yaml"
    silent.write_text("rules: []\n")  # the double answers nothing: every request fails
    code, output = run(
        "eval", "run", "--dataset", "gsm8k", "--backend", f"scripted:{silent}", "--data-dir", data,
        "--out", str(tmp_path / "runs"), "--run-name", "r", "--no-progress",
    )  # fmt: skip
    assert code == 1 and "every problem failed" in output
    assert len((tmp_path / "runs" / "r" / "samples.jsonl").read_text().splitlines()) == 3  # all recorded


def test_the_question_can_come_from_stdin_or_a_file_and_bad_bytes_are_named(script, tmp_path):
    long_question = "What is 2 + 2? " + "Think carefully. " * 100_000  # 1.7 MB: more than argv carries
    result = CliRunner().invoke(app, ["solve", "-", "--backend", f"scripted:{script}", "--json"], input=long_question)
    assert result.exit_code == 0 and json.loads(result.output)["answer"] == "4"
    question = tmp_path / "q.txt"
    question.write_text("What is 2 + 2?", encoding="utf-8")
    code, output = run("solve", "--file", str(question), "--backend", f"scripted:{script}")
    assert code == 0 and "Answer: 4" in output
    question.write_bytes(b"What is \xff 2?")
    code, output = run("solve", "--file", str(question), "--backend", f"scripted:{script}")
    assert code == 2 and f"{question} is not UTF-8 text (byte 0xff at offset 8)" in output
    code, output = run("solve", "--file", str(tmp_path / "missing.txt"), "--backend", f"scripted:{script}")
    assert code == 2 and "cannot read the question from" in output
    code, output = run("solve", "q?", "--file", str(question), "--backend", f"scripted:{script}")
    assert code == 2 and "not both" in output


def test_a_question_with_lone_surrogates_is_refused_by_name(script):
    code, output = run("solve", "What is \udcff 2?", "--backend", f"scripted:{script}")
    assert code == 2 and "character 8" in output and "not valid text" in output


def test_a_dataset_file_with_bytes_that_are_not_utf8_names_file_and_line(tmp_path):
    from thoughtgraph.evals.datasets import DataError, load_dataset

    folder = tmp_path / "gsm8k"
    folder.mkdir()
    good = json.dumps({"question": "q", "answer": "#### 1"}).encode()
    (folder / "test.jsonl").write_bytes(good + b"\n" + b'{"question": "\xff"}' + b"\n")
    with pytest.raises(DataError, match=r"test.jsonl:2: not UTF-8 text \(byte 0xff\)"):
        load_dataset("gsm8k", data_dir=tmp_path)
    assert len(load_dataset("gsm8k", data_dir=tmp_path, skip_bad=True).problems) == 1
    (tmp_path / "game24").mkdir()
    (tmp_path / "game24" / "24.csv").write_bytes(b"Rank,Puzzles\n1,1 1 4 6\n2,\xfe\n")
    with pytest.raises(DataError, match=r"24.csv:3: not UTF-8 text \(byte 0xfe\)"):
        load_dataset("game24", data_dir=tmp_path)


def test_offline_hub_loading_says_to_pass_a_data_folder(monkeypatch):
    import datasets

    from thoughtgraph.evals.datasets import DATA_ENV, DataError, load_dataset

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match=r"cannot load openai/gsm8k from the hub .*offline\? pass --data-dir"):
        load_dataset("gsm8k")


def test_a_second_eval_into_the_same_folder_refuses_and_junk_sample_lines_are_dropped(script, data, tmp_path):
    import fcntl

    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    args = ("eval", "run", "--dataset", "gsm8k", "--backend", f"scripted:{script}", "--data-dir", data,
            "--out", str(tmp_path / "runs"), "--run-name", "r", "--no-progress")  # fmt: skip
    with (run_dir / ".lock").open("w") as held:  # another run is writing
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, output = run(*args)
        assert code == 2 and "another `evals run` is writing" in output
    (run_dir / "samples.jsonl").write_text('[1, 2]\n{"no": "id"}\n"text"\n')  # JSON, but not samples
    code, output = run(*args)
    assert code == 0, output
    lines = (run_dir / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["id"].startswith("gsm8k/test/") for line in lines)


class Answering:
    """A real HTTP server on 127.0.0.1 that answers every request with a fixed status and body."""

    def __init__(self, status: int, body: bytes, content_type: str) -> None:
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def eval_against(url: str, data: str, tmp_path) -> tuple[int, str, list[str]]:
    code, output = run(
        "eval", "run", "--dataset", "gsm8k", "--backend", f"openai:{url}#no-such-model", "--data-dir", data,
        "--out", str(tmp_path / "runs"), "--run-name", "r", "--no-progress",
    )  # fmt: skip
    log = tmp_path / "runs" / "r" / "samples.jsonl"
    return code, output, log.read_text().splitlines() if log.exists() else []


def test_a_server_without_the_model_stops_the_run_at_once_with_its_message(data, tmp_path):
    body = json.dumps({"error": {"message": "The model `no-such-model` does not exist.", "code": 404}}).encode()
    server = Answering(404, body, "application/json")
    try:
        code, output, samples = eval_against(server.url, data, tmp_path)
    finally:
        server.close()
    assert code == 2 and "has no model or endpoint 'no-such-model'" in output and "does not exist" in output
    assert samples == []  # not 3 problems recorded as failed


def test_a_server_answering_with_a_web_page_is_named(data, tmp_path):
    server = Answering(200, b"<html><body>hello</body></html>", "text/html")
    try:
        code, output, samples = eval_against(server.url, data, tmp_path)
    finally:
        server.close()
    assert code == 2 and "not an OpenAI-compatible response" in output and samples == []


def test_nothing_listening_stops_the_run_with_a_non_zero_exit(data, tmp_path):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    code, output, samples = eval_against(f"http://127.0.0.1:{port}/v1", data, tmp_path)
    assert code == 2 and "nothing answered" in output and "cannot reach" in output and samples == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("solve", "hi", "--backend", "ollama:x"), "unknown backend 'ollama'"),
        (("solve", "hi", "--backend", "llamacpp:/nope.gguf"), "no GGUF model file"),
        (("solve", "hi", "--backend", "openai:"), "openai"),
        (("solve", "hi", "--method", "magic"), "unknown method 'magic'"),
        (("solve", "  ", "--backend", "SCRIPT"), "problem is empty"),
        (("solve", "hi", "--backend", "SCRIPT", "--option", "beams"), "--option takes key=value"),
        (("solve", "hi", "--backend", "SCRIPT", "--max-calls", "0"), "max_calls must be positive"),
        (("solve", "hi", "--backend", "SCRIPT", "--max-tokens", "-5"), "max_tokens must be positive"),
        (("eval", "run", "--dataset", "mnist", "--data-dir", "DATA"), "unknown dataset 'mnist'"),
        (("eval", "run", "--dataset", "gsm8k", "--split", "dev", "--data-dir", "DATA"), "has no split 'dev'"),
        (("eval", "run", "--dataset", "gsm8k", "--data-dir", "DATA", "--option", "beams=2"), "has no option"),
        (("eval", "run", "--dataset", "gsm8k", "--data-dir", "DATA", "--concurrency", "0"), "concurrency must be"),
    ],
)
def test_the_errors_that_already_named_themselves_still_do(script, data, args, message):
    args = tuple(a.replace("SCRIPT", f"scripted:{script}").replace("DATA", data) for a in args)
    if args[0] == "eval":
        args = (*args, "--backend", f"scripted:{script}", "--no-progress")
    code, output = run(*args)
    assert code == 2 and message in output and "Traceback" not in output


def test_malformed_records_are_named_by_file_and_line(script, data, tmp_path):
    path = tmp_path / "data" / "gsm8k" / "test.jsonl"
    path.write_text(path.read_text() + "{not json\n" + json.dumps({"question": "q"}) + "\n")
    args = ("eval", "run", "--dataset", "gsm8k", "--data-dir", data, "--backend", f"scripted:{script}",
            "--out", str(tmp_path / "runs"), "--no-progress")  # fmt: skip
    code, output = run(*args)
    assert code == 2 and f"{path}:4: not valid JSON" in output
    code, output = run(*args, "--skip-bad")
    assert code == 0  # both bad lines skipped and counted
    results = json.loads(next((tmp_path / "runs").glob("*/results.json")).read_text())
    assert results["skipped_bad_records"] == 2


OPTION_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**9), 10**9), st.floats(), st.text(max_size=12),
    st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_property_any_option_value_gives_a_config_or_a_named_error(data):
    from dataclasses import fields

    from thoughtgraph.reasoning.api import make_config
    from thoughtgraph.reasoning.methods import METHODS

    method = data.draw(st.sampled_from(sorted(METHODS)))
    name = data.draw(st.sampled_from([f.name for f in fields(METHODS[method].config)]))
    value = data.draw(OPTION_VALUES)
    try:
        make_config(method, **{name: value})
    except ValueError as error:  # OptionError, or the config's own range check
        assert name.split("_")[0] in str(error) or "paths" in str(error) or "samples" in str(error), str(error)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    option=st.tuples(st.sampled_from(["samples", "temperature", "top_p", "chain_tokens", "x"]), st.text(max_size=8)),
    budget=st.sampled_from(["--max-calls", "--max-tokens", "--max-seconds"]),
    budget_value=st.text(max_size=6),
)
def test_property_the_cli_never_shows_a_traceback_for_odd_options(script, option, budget, budget_value):
    code, output = run(
        "solve", "q?", "--method", "sc", "--backend", f"scripted:{script}", "--option", f"{option[0]}={option[1]}",
        budget, budget_value,
    )  # fmt: skip
    assert code in (0, 2) and "Traceback" not in output
