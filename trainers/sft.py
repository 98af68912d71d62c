"""SFT distillation of search traces: fine-tune (LoRA) on the solved problems of ``evals`` run folders, so a
model learns what BoT, TR or any method found::

    python -m thoughtgraph.trainers.sft --config trainers/configs/sft_tiny.yaml --from_runs runs/bot-gsm8k runs/tr-gsm8k

A sample is used when it finished (``status: ok``), was graded correct and has reasoning; the prompt is the
chain-of-thought prompt on its question and the completion the method's reasoning, so the loss is on the
completion only (TRL's prompt-completion format). The run folder is laid out as ``gg_calibrate``'s.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thoughtgraph.trainers.common import (
    ModelArguments,
    SetupError,
    check_model,
    lora,
    metrics_callback,
    parse,
    resume_point,
    train_and_save,
    write_resolved_config,
)

STATED = re.compile(r"the answer is", re.IGNORECASE)


@dataclass
class TraceArguments:
    from_runs: list[str] = field(default_factory=list, metadata={"help": "evals run folders (with samples.jsonl)."})
    methods: list[str] = field(default_factory=list, metadata={"help": "Keep only these methods (default: all)."})


def stated(sample: dict[str, Any]) -> str:
    """The sample's reasoning ending in the prompt's answer line: where the chain did not say "The answer is"
    (the method asked for the answer in a second call), that line is added with the graded answer, so the model
    is not taught to stop without one."""
    reasoning = sample["reasoning"].strip()
    if STATED.search(reasoning) or not sample.get("answer"):
        return reasoning
    return f"{reasoning}\nThe answer is {sample['answer']}."


def solved_traces(folders: list[str], methods: list[str] | None = None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Prompt-completion rows from the correct samples of the run folders, and what was skipped and why."""
    from thoughtgraph.prompts import load_prompt

    if not folders:
        raise SetupError("no run folders: pass --from_runs DIR [DIR ...] (evals run folders)")
    prompt = load_prompt("cot/solve")
    rows, skipped = [], {"failed": 0, "wrong": 0, "no_reasoning": 0, "other_method": 0, "unreadable": 0}
    for folder in map(Path, folders):
        samples = folder / "samples.jsonl"
        if not samples.is_file():
            raise SetupError(f"{folder} is not an evals run folder (no samples.jsonl)")
        results = folder / "results.json"
        method = json.loads(results.read_text()).get("method") if results.is_file() else None
        for number, line in enumerate(samples.read_text().splitlines(), start=1):
            try:
                sample = json.loads(line)
            except json.JSONDecodeError:
                skipped["unreadable"] += 1  # a line cut by a killed run
                continue
            if methods and method not in methods:
                skipped["other_method"] += 1
            elif sample.get("status") != "ok":
                skipped["failed"] += 1
            elif not sample.get("correct"):
                skipped["wrong"] += 1
            elif not (sample.get("reasoning") or "").strip():
                skipped["no_reasoning"] += 1
            else:
                turns = prompt.render(question=sample["question"])
                rows.append(
                    {
                        "prompt": [{"role": role, "content": text} for role, text in turns],
                        "completion": [{"role": "assistant", "content": stated(sample)}],
                        "source": f"{folder.name}:{sample.get('id', number)}",
                    }
                )
    if not rows:
        raise SetupError(f"no solved traces in {', '.join(folders)} (skipped: {skipped})")
    return rows, skipped


def main(argv: list[str] | None = None) -> None:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    try:
        model_args, traces, config = parse(ModelArguments, TraceArguments, SFTConfig, argv=argv)
        folder = check_model(model_args.model)
        resume = resume_point(config.output_dir, model_args.resume)
        rows, skipped = solved_traces(traces.from_runs, traces.methods)
    except SetupError as error:
        sys.exit(f"error: {error}")
    print(f"{len(rows)} solved traces (skipped: {skipped})")
    write_resolved_config(config.output_dir, model_args, traces, config)
    trainer = SFTTrainer(
        model=str(folder), args=config, train_dataset=Dataset.from_list(rows), peft_config=lora(model_args),
        callbacks=[metrics_callback(config.output_dir)],
    )  # fmt: skip
    train_and_save(trainer, config.output_dir, resume)
    print(f"adapter saved in {config.output_dir}; load it with hf:{folder}#adapter={config.output_dir}")


if __name__ == "__main__":
    main()
