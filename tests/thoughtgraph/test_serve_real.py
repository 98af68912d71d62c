"""``thoughtgraph serve`` as a user runs it (a separate process on 127.0.0.1 serving the embedded model),
called by the official ``openai`` client and by lm-evaluation-harness's ``local-chat-completions``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from tests.conftest import thoughtgraph_serve
from thoughtgraph.reasoning import METHODS

pytestmark = pytest.mark.integration
SERVED = ["cot", "bot", "tr", "gg"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with thoughtgraph_serve("--backend", "llamacpp:smollm2", "--list-traces", log=log) as url:
        yield url


@pytest.fixture(scope="module")
def question(data_dir):
    with (data_dir / "gsm8k" / "test.jsonl").open() as handle:
        return json.loads(handle.readline())["question"]


def trace_of(url: str, trace_id: str) -> dict:
    return httpx.get(f"{url}/traces/{trace_id}", timeout=10).json()


@pytest.mark.parametrize("method", SERVED)
def test_plain_and_streaming_completions_with_usage_from_the_ledger(server, question, method):
    client = openai.OpenAI(base_url=server, api_key="unused", timeout=300)
    assert method in {m.id for m in client.models.list()}
    messages = [{"role": "user", "content": question}]
    options = {**METHODS[method].tiny, "max_calls": 20}
    reply = client.chat.completions.create(model=method, messages=messages, seed=1, extra_body=options)
    extension = reply.model_extra["thoughtgraph"]
    trace = trace_of(server, extension["trace_id"])
    assert trace["usage"]["calls"] >= 1 and trace["graph"]["nodes"]
    assert reply.usage.prompt_tokens == trace["usage"]["prompt_tokens"] > 0
    assert reply.usage.completion_tokens == trace["usage"]["completion_tokens"] > 0
    assert reply.choices[0].message.content == (trace["answer"] or "")
    assert reply.choices[0].message.model_extra["reasoning_content"] == trace["reasoning"]

    stream = client.chat.completions.create(model=method, messages=messages, seed=1, stream=True,
                                            stream_options={"include_usage": True}, extra_body=options)  # fmt: skip
    chunks = list(stream)
    reasoning = [c for c in chunks if c.choices and (c.choices[0].delta.model_extra or {}).get("reasoning_content")]

    final = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    streamed_trace = trace_of(server, final.model_extra["thoughtgraph"]["trace_id"])
    assert len(reasoning) >= 1
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (streamed_trace["answer"] or "")
    assert chunks[-1].usage.prompt_tokens == streamed_trace["usage"]["prompt_tokens"]
    assert chunks[-1].usage.completion_tokens == streamed_trace["usage"]["completion_tokens"]


TASK = Path(__file__).resolve().parents[2] / "evals" / "lm_eval_tasks" / "thoughtgraph_gsm8k.yaml"


@pytest.mark.timeout(900)
def test_lm_evaluation_harness_runs_gsm8k_against_the_server(server, data_dir, tmp_path):
    # generation_kwargs beyond lm-eval's own travel in the request body: TR's options and a call budget
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    task = yaml.safe_load(TASK.read_text())  # the shipped task, pointed at the local copy (no hub here)
    task.pop("dataset_name")
    task.update(dataset_path="json", dataset_kwargs={"data_files": {"test": str(data_dir / "gsm8k" / "test.jsonl")}})
    (tasks / "thoughtgraph_gsm8k.yaml").write_text(yaml.safe_dump(task))
    output = tmp_path / "results"
    command = [
        str(Path(sys.executable).with_name("lm_eval")), "--model", "local-chat-completions",
        "--model_args", f"model=tr,base_url={server}/chat/completions,num_concurrent=1,max_retries=1,"
                        "tokenized_requests=False",
        "--tasks", "thoughtgraph_gsm8k", "--include_path", str(tasks), "--apply_chat_template",
        "--limit", "2", "--output_path", str(output), "--log_samples",
    ]  # fmt: skip
    environment = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(command, capture_output=True, text=True, timeout=900, env=environment)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    results = json.loads(next(output.rglob("results_*.json")).read_text())
    assert 0.0 <= results["results"]["thoughtgraph_gsm8k"]["exact_match,last_number"] <= 1.0
    samples = [json.loads(line) for line in next(output.rglob("samples_thoughtgraph_gsm8k_*.jsonl")).open()]
    assert len(samples) == 2
    served = {t["problem"].strip(): t["answer"] for t in httpx.get(f"{server}/traces").json()["data"]
              if t["model"] == "tr"}  # fmt: skip
    for sample in samples:  # each answer lm-eval scored is the answer our TR run gave to that problem
        assert sample["resps"][0][0] == (served[sample["doc"]["question"].strip()] or "")
