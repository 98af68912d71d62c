"""`evals` against lm-evaluation-harness, one after the other on the same machine, problems and token budget.

1. lm-evaluation-harness (`local-chat-completions`, its own 0-shot `gsm8k` task pointed at the local copy, 256 new
   tokens, greedy, concurrency 1) against a `llama_cpp.server` serving the embedded model;
2. `evals run --method cot` through the same server (the run finds its own concurrency);
3. the same with lm-eval's own prompt ("Question: ...\nAnswer:", ``bench/prompts/lm_eval_gsm8k``, a prompt
   override) in place of cot's: the same work asked of both harnesses, so the ratio is the harnesses'. cot's
   prompt asks for steps and a stated answer, and its chains are longer (measured: 10,026 tokens against 7,104);
4. `evals run --method cot` on the in-process `llamacpp:smollm2` engine (the default path), the server stopped.

Prints problems per minute, completion tokens and strict/flexible accuracy for each, and the ratios against
lm-eval. Cross-grading: our graders (``evals.graders.extract_gsm8k``) read lm-eval's replies and lm-eval's own
filters (its task's regexes, ``RegexFilter`` and ``exact_match``) read our chains; for each reply and mode it
counts where the two verdicts agree, and the accuracy each grader gives the same outputs. Refuses to run on a busy
machine (1-minute load average above 0.6 on 2 cores): the figures would measure the other work. Completion tokens
of lm-eval's replies are counted with the model's tokenizer.

Usage: python bench/vs_lmeval.py [--problems 50] [--data-dir ../shared/data] [--out F] [--keep DIR] [--force]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).parent.resolve():
    sys.path.pop(0)
sys.path.append(str(Path(__file__).resolve().parents[1]))  # for tests.conftest's server; the package is installed

import yaml

from tests.conftest import LlamaServer  # the same server the tests start
from thoughtgraph.backends import create_backend
from thoughtgraph.evals.graders import extract_gsm8k, gsm8k_gold, numbers_equal
from thoughtgraph.evals.runner import EvalConfig, run_eval

MAX_NEW_TOKENS = 256
PROMPTS_ENV = "THOUGHTGRAPH_PROMPTS"
LM_EVAL_PROMPT = Path(__file__).resolve().parent / "prompts" / "lm_eval_gsm8k"
BUSY_LOAD = 0.6


def gsm8k_task() -> dict:
    """lm-eval's own gsm8k task definition (prompt, stop sequences, filters, exact_match settings)."""
    import lm_eval

    return yaml.safe_load((Path(lm_eval.__file__).parent / "tasks" / "gsm8k" / "gsm8k.yaml").read_text())


def lm_eval_run(server: LlamaServer, data_dir: Path, problems: int, work: Path) -> dict:

    task = gsm8k_task()
    task.update(task="gsm8k_local", dataset_path="json", tag=[])
    task.pop("dataset_name")
    files = {"train": str(data_dir / "gsm8k" / "train.jsonl"), "test": str(data_dir / "gsm8k" / "test.jsonl")}
    task["dataset_kwargs"] = {"data_files": files}
    tasks = work / "tasks"
    tasks.mkdir()
    (tasks / "gsm8k_local.yaml").write_text(yaml.safe_dump(task))
    command = [
        str(Path(sys.executable).with_name("lm_eval")), "--model", "local-chat-completions",
        "--model_args", f"model=smollm2,base_url={server.base_url}/chat/completions,num_concurrent=1,"
                        f"tokenized_requests=False,max_gen_toks={MAX_NEW_TOKENS}",
        "--tasks", "gsm8k_local", "--include_path", str(tasks), "--apply_chat_template", "--num_fewshot", "0",
        "--limit", str(problems), "--output_path", str(work / "lm_eval"), "--log_samples",
    ]  # fmt: skip
    environment = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=3600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"lm_eval failed:\n{done.stderr[-3000:]}")
    results = json.loads(next((work / "lm_eval").rglob("results_*.json")).read_text())["results"]["gsm8k_local"]
    logged = [json.loads(line) for line in next((work / "lm_eval").rglob("samples_gsm8k_local_*.jsonl")).open()]
    samples = list({s["doc_id"]: s for s in logged}.values())  # lm-eval logs each problem once per filter
    (work / "lm_eval_replies.jsonl").write_text(
        "".join(json.dumps({"reply": s["resps"][0][0], "gold": s["doc"]["answer"]}) + "\n" for s in samples)
    )
    counter = create_backend("llamacpp:smollm2#slots=1&threads=1")
    tokens = sum(len(counter.token_pieces(s["resps"][0][0])) for s in samples)
    counter.close()
    return {
        "seconds": round(seconds, 1),
        "problems_per_minute": round(60 * len(samples) / seconds, 2),
        "completion_tokens": tokens,
        "strict": results["exact_match,strict-match"],
        "flexible": results["exact_match,flexible-extract"],
    }


def evals_run(backend, data_dir: Path, problems: int, work: Path, name: str, prompts: Path | None = None) -> dict:
    """One ``evals run --method cot``; ``prompts``: a folder of prompt overrides (``THOUGHTGRAPH_PROMPTS``)."""
    config = EvalConfig(dataset="gsm8k", method="cot", data_dir=str(data_dir), out=str(work), run_name=name,
                        limit=problems, method_options={"chain_tokens": MAX_NEW_TOKENS})  # fmt: skip
    with mock.patch.dict(os.environ, {PROMPTS_ENV: str(prompts)} if prompts else {}):  # restored afterwards
        started = time.perf_counter()
        results = asyncio.run(run_eval(config, backend=backend, progress=False))
        seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 1),
        "problems_per_minute": round(60 * results["n_samples"] / seconds, 2),
        "completion_tokens": results["usage"]["total"]["completion_tokens"],
        "calls": results["usage"]["total"]["calls"],
        "answer_asked_separately": results["answer_asked_separately"],
        "strict": results["accuracy_strict"]["value"],
        "flexible": results["accuracy_flexible"]["value"],
        "concurrency": results["concurrency"],
    }


def lm_eval_verdicts(replies: list[str], golds: list[str]) -> dict[str, list[bool]]:
    """lm-eval's own grading of ``replies``: its gsm8k task's filters and exact_match settings, its code."""
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.filters.extraction import RegexFilter

    task = gsm8k_task()
    metric = next(m for m in task["metric_list"] if m["metric"] == "exact_match")
    settings = {key: metric[key] for key in ("regexes_to_ignore", "ignore_case", "ignore_punctuation")}
    verdicts = {}
    for entry in task["filter_list"]:
        regex = next(step for step in entry["filter"] if step["function"] == "regex")
        extract = RegexFilter(regex_pattern=regex["regex_pattern"], group_select=regex.get("group_select", 0))
        filtered = [resps[0] for resps in extract.apply([[reply] for reply in replies], [{}] * len(replies))]
        verdicts[entry["name"]] = [
            bool(exact_match_hf_evaluate([prediction], [gold], **settings)["exact_match"])
            for prediction, gold in zip(filtered, golds, strict=True)
        ]
    return verdicts


def cross_grade(replies: list[str], golds: list[str]) -> dict:
    """Both graders on the same replies: accuracy by each and how many verdicts agree, per mode."""
    theirs = lm_eval_verdicts(replies, golds)
    report = {}
    for ours_mode, their_filter in (("strict", "strict-match"), ("flexible", "flexible-extract")):
        ours = [
            numbers_equal(extract_gsm8k(reply, ours_mode), gsm8k_gold(gold))
            for reply, gold in zip(replies, golds, strict=True)
        ]
        report[ours_mode] = {
            "ours": sum(ours), "lm_eval": sum(theirs[their_filter]), "of": len(replies),
            "agree": sum(a == b for a, b in zip(ours, theirs[their_filter], strict=True)),
        }  # fmt: skip
    return report


def our_chains(run_folder: Path) -> tuple[list[str], list[str]]:
    """The chains and gold answers of an evals run folder (gold as GSM8K writes it, '#### N')."""
    samples = [json.loads(line) for line in (run_folder / "samples.jsonl").read_text().splitlines() if line]
    return [s.get("reasoning") or "" for s in samples], [f"#### {s['gold']}" for s in samples]


def main(args: argparse.Namespace) -> dict:
    load = os.getloadavg()[0]
    if load > BUSY_LOAD and not args.force:
        raise SystemExit(
            f"the machine is busy (1-minute load average {load:.2f} > {BUSY_LOAD}): the figures would measure the "
            "other work; wait for it to finish, or pass --force"
        )
    data_dir = Path(args.data_dir)
    figures: dict = {"problems": args.problems, "max_new_tokens": MAX_NEW_TOKENS, "load_average_at_start": load}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(args.keep or folder)
        work.mkdir(parents=True, exist_ok=True)
        server = LlamaServer()
        try:
            figures["lm_eval_server"] = lm_eval_run(server, data_dir, args.problems, work)
            served = create_backend(f"openai:{server.base_url}#smollm2", structured_outputs="llamacpp")
            figures["evals_server"] = evals_run(served, data_dir, args.problems, work, "server")
            figures["evals_server_lm_eval_prompt"] = evals_run(
                served, data_dir, args.problems, work, "server_lm_eval_prompt", prompts=LM_EVAL_PROMPT
            )
        finally:
            server.stop()
        figures["evals_in_process"] = evals_run(
            create_backend("llamacpp:smollm2"), data_dir, args.problems, work, "in_process"
        )
        theirs = [json.loads(line) for line in (work / "lm_eval_replies.jsonl").read_text().splitlines()]
        figures["cross_grade"] = {
            "lm_eval_replies": cross_grade([r["reply"] for r in theirs], [r["gold"] for r in theirs])
        }
        for name in ("server", "server_lm_eval_prompt", "in_process"):
            figures["cross_grade"][f"evals_{name}_chains"] = cross_grade(*our_chains(work / name))
    base = figures["lm_eval_server"]["problems_per_minute"]
    for key in ("evals_server", "evals_server_lm_eval_prompt", "evals_in_process"):
        figures[f"{key}_vs_lm_eval"] = round(figures[key]["problems_per_minute"] / base, 2)
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=50)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", type=Path, help="write the runs here and keep them (default: a temporary folder)")
    parser.add_argument("--force", action="store_true", help="run on a busy machine anyway")
    arguments = parser.parse_args()
    figures = main(arguments)
    print(json.dumps(figures, indent=2))
    if arguments.out:
        arguments.out.write_text(json.dumps(figures, indent=2))
