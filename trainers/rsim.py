"""rSIM leader-follower training: alternating GRPO phases for the planner (leader) and the reasoner
(follower), each a LoRA adapter, with rewards from rollouts through the same ``rsim`` method used at inference.

    python -m thoughtgraph.trainers.rsim --config trainers/configs/rsim_tiny.yaml --output_dir runs/rsim

Our schedule (the paper's details are sparse; documented, configurable): ``schedule`` lists the phases in
order (default planner, reasoner); each runs ``phase_steps`` GRPO steps on its agent while the other is frozen
at its latest adapter (or prompted, before it has one).
- planner phase: a prompt is the planner's prompt at the start of a problem; each sampled completion is a
  strategy choice; its reward comes from a rollout that writes the first step under that strategy and continues
  with the current policies (the planner being trained, the frozen reasoner);
- reasoner phase: a prompt is the reasoner's prompt after the frozen planner's first choice; each completion
  is a step; its reward comes from the rollout continuing after it (the reasoner being trained, the frozen
  planner).
A small planner that does not follow "reply with one of" would name no strategy in any sample, so every group
would earn one reward: ``planner_names_first`` (on by default) makes each sampled planner completion begin with
the first token of a strategy name (``name_first_sampling``), and at inference and measurement the hf backend
chooses the planner's reply among the names by likelihood (a choice constraint, ``backends/hf_choice.py``).
Reward, credited to the agent trained in the phase: correctness of the rollout's final answer (``evals``
graders) + ``format_weight`` when a step states the answer in the asked-for form - ``invalid_penalty`` for a
planner reply that names no strategy. GRPO's group-relative advantages are per agent because each phase trains
one agent on its own groups. Phases resume: a phase whose folder holds an adapter is skipped, ``--resume``
continues a phase from its checkpoint. Outputs: ``phase-N-AGENT/`` adapters, ``phases.json`` (the latest
planner and reasoner adapters), metrics and plots per phase.
"""

from __future__ import annotations

import asyncio
import copy
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from thoughtgraph.trainers.common import (
    DataArguments,
    ModelArguments,
    SetupError,
    check_model,
    lora,
    metrics_callback,
    parse,
    train_and_save,
    training_problems,
    write_resolved_config,
)
from thoughtgraph.trainers.rewards import completion_text, is_correct

AGENTS = ("planner", "reasoner")


@dataclass
class RSIMTrainingArguments:
    reasoner_model: str = field(default="", metadata={"help": "The reasoner's base folder (default: model)."})
    schedule: list[str] = field(default_factory=lambda: ["planner", "reasoner"], metadata={"help": "Phases."})
    phase_steps: int = field(default=1, metadata={"help": "GRPO steps per phase."})
    rollout_steps: int = field(default=3, metadata={"help": "Steps a rollout may write."})
    step_tokens: int = field(default=48, metadata={"help": "Tokens per reasoner step in rollouts."})
    strategies_file: str | None = field(default=None, metadata={"help": "Strategy list YAML."})
    invalid_penalty: float = field(default=0.5, metadata={"help": "Reward lost by a planner reply naming no strategy."})
    format_weight: float = field(default=0.2, metadata={"help": "Reward for stating the answer in the asked-for form."})
    planner_names_first: bool = field(
        default=True, metadata={"help": "Sample planner completions that begin with a strategy name's first token."}
    )


def name_first_sampling(tokenizer: Any, names: list[str], vocab_size: int) -> dict[str, Any]:
    """``generation_kwargs`` under which every sampled planner completion begins with the first token of a strategy
    name: all other tokens are suppressed at the first position only (transformers' ``begin_suppress_tokens``).
    A small planner that does not follow "reply with one of" (SmolLM2-135M named a strategy in 1 of 48 free
    samples) then still gives GRPO groups whose choices, and so rewards, differ; the name's own later tokens are
    the model's. The policy's log-probabilities, and so GRPO's loss, are the model's own: the suppression only
    moves the sampling, which differs from on-policy sampling by that first-position restriction."""
    firsts = {tokenizer(name, add_special_tokens=False)["input_ids"][0] for name in names}
    return {"begin_suppress_tokens": [token for token in range(vocab_size) if token not in firsts]}


def check_schedule(schedule: list[str], phase_steps: int) -> None:
    unknown = [phase for phase in schedule if phase not in AGENTS]
    if not schedule or unknown:
        raise SetupError(f"schedule must list phases from {AGENTS}, got {schedule}")
    if phase_steps < 1:
        raise SetupError(f"phase_steps must be at least 1, got {phase_steps}")


@dataclass
class Rollout:
    """One rollout's outcome and its reward (the phase's reward, credited to the agent being trained)."""

    reward: float
    correct: bool
    stated: bool
    strategies: list[str]


async def rollout(
    question: str, gold: str, dataset: str, *, planner: Any, reasoner: Any, arguments: RSIMTrainingArguments,
    penalty: float = 0.0, **start: Any,
) -> Rollout:  # fmt: skip
    """Continue a problem with ``rsim`` from ``start`` (``start_strategy`` or ``start_steps``) under the given
    planner and reasoner; reward = correct + ``format_weight`` when a step states the answer - ``penalty``."""
    from thoughtgraph.reasoning.answers import stated_answer
    from thoughtgraph.reasoning.api import solve_async
    from thoughtgraph.reasoning.rsim import trace_strategies

    solution = await solve_async(
        question, "rsim", reasoner, planner=planner, strategies_file=arguments.strategies_file,
        max_steps=arguments.rollout_steps, step_tokens=arguments.step_tokens, **start,
    )  # fmt: skip
    chain = solution.reasoning or ""
    stated = stated_answer(chain) is not None  # the methods' own rule for "states the answer in the asked form"
    right = is_correct(chain if stated else f"The answer is {solution.answer}.", gold, dataset)
    reward = float(right) + arguments.format_weight * stated - penalty
    return Rollout(reward, right, stated, trace_strategies(chain))


class RolloutReward:
    """The phase's reward function (TRL signature): each completion is continued by an ``rsim`` rollout; the
    completions of a step are rolled out concurrently, so the backends batch them."""

    def __init__(self, agent: str, arguments: RSIMTrainingArguments, frozen: Any) -> None:
        self.agent, self.arguments, self.frozen = agent, arguments, frozen
        self.policy: Any = None
        """The trained agent as a backend over the trainer's in-memory model (set once the trainer exists)."""
        self.__name__ = f"rsim_{agent}_reward"

    def __call__(
        self, completions: list[Any], question: list[str], answer: list[str], dataset: list[str], **_: Any
    ) -> list[float]:
        return asyncio.run(self._score(completions, question, answer, dataset))

    async def _score(self, completions, questions, answers, datasets) -> list[float]:
        rollouts = [
            self._rollout(completion_text(completion).strip(), question, gold, name)
            for completion, question, gold, name in zip(completions, questions, answers, datasets, strict=True)
        ]
        return [result.reward for result in await asyncio.gather(*rollouts)]

    def _rollout(self, text: str, question: str, gold: str, dataset: str) -> Any:
        from thoughtgraph.reasoning.rsim import RSIMConfig, load_strategies, read_strategy

        if self.agent == "planner":  # the completion is the strategy of the first step
            strategy = read_strategy(text, [n for n, _ in load_strategies(self.arguments.strategies_file)])
            penalty = 0.0 if strategy else self.arguments.invalid_penalty
            return rollout(
                question, gold, dataset, planner=self.policy, reasoner=self.frozen, arguments=self.arguments,
                penalty=penalty, start_strategy=strategy or RSIMConfig.fallback_strategy,
            )  # fmt: skip
        return rollout(  # the completion is the first step
            question, gold, dataset, planner=self.frozen, reasoner=self.policy, arguments=self.arguments,
            start_steps=(text or "(empty step)",),
        )  # fmt: skip


async def held_out_rollouts(
    problems: list[Any], dataset: str, *, planner: Any, reasoner: Any, arguments: RSIMTrainingArguments,
    concurrency: int = 16,
) -> list[dict[str, Any]]:  # fmt: skip
    """The planner phase's reward on held-out problems, one greedy rollout each: the planner names the first
    strategy from the same prompt it is trained on (a reply naming none costs ``invalid_penalty`` and falls
    back, as in training), then ``rsim`` continues. One row per problem (what ``trainers.recipe`` compares)."""
    from thoughtgraph.agents.runtime import Budget
    from thoughtgraph.reasoning.rsim import RSIMConfig, choose_strategy, load_strategies, planner_agent

    names = [n for n, _ in load_strategies(arguments.strategies_file)]
    gate = asyncio.Semaphore(concurrency)

    async def one(problem: Any) -> dict[str, Any]:
        async with gate:
            agent = planner_agent(planner, Budget(), names)
            strategy, named = await choose_strategy(agent, problem.prompt, [], names, RSIMConfig.fallback_strategy)
            result = await rollout(
                problem.prompt, problem.gold, dataset, planner=planner, reasoner=reasoner, arguments=arguments,
                penalty=0.0 if named else arguments.invalid_penalty, start_strategy=strategy,
            )  # fmt: skip
        return {"id": problem.id, "first_strategy": strategy, "named": named, **asdict(result)}

    return list(await asyncio.gather(*(one(problem) for problem in problems)))


def phase_rows(agent: str, problems: Any, arguments: RSIMTrainingArguments, frozen_planner: Any) -> list[dict]:
    """The phase's prompts: the planner's at the start; the reasoner's after the frozen planner's first choice."""
    from thoughtgraph.agents.runtime import Budget
    from thoughtgraph.prompts import load_prompt
    from thoughtgraph.reasoning.rsim import RSIMConfig, choose_strategy, load_strategies, planner_agent

    strategies = dict(load_strategies(arguments.strategies_file))
    names = list(strategies)
    rows = []
    for problem in problems:
        question = problem["prompt"][-1]["content"]
        if agent == "planner":
            turns = load_prompt("rsim/planner").render(question=question, steps=[], names=", ".join(names))
        else:
            planner = planner_agent(frozen_planner, Budget(), names)
            strategy, _ = asyncio.run(choose_strategy(planner, question, [], names, RSIMConfig.fallback_strategy))
            turns = load_prompt("rsim/reasoner").render(question=question, steps=[], instruction=strategies[strategy])
        rows.append(
            {"prompt": [{"role": r, "content": t} for r, t in turns], "question": question, "answer": problem["answer"],
             "dataset": problem["dataset"]}
        )  # fmt: skip
    return rows


def planner_sampling(base: Path, arguments: RSIMTrainingArguments) -> dict[str, Any]:
    from transformers import AutoConfig, AutoTokenizer

    from thoughtgraph.reasoning.rsim import load_strategies

    tokenizer = AutoTokenizer.from_pretrained(base)
    vocab_size = max(AutoConfig.from_pretrained(base).vocab_size, len(tokenizer))
    return name_first_sampling(tokenizer, [n for n, _ in load_strategies(arguments.strategies_file)], vocab_size)


def main(argv: list[str] | None = None) -> None:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from thoughtgraph.backends.hf import HFBackend

    try:
        model_args, data_args, arguments, config = parse(
            ModelArguments, DataArguments, RSIMTrainingArguments, GRPOConfig, argv=argv
        )
        check_schedule(arguments.schedule, arguments.phase_steps)
        if arguments.planner_names_first and getattr(config, "use_vllm", False) and "planner" in arguments.schedule:
            raise SetupError(
                "planner_names_first restricts transformers' sampling (begin_suppress_tokens), which TRL's vLLM "
                "generation does not take: set planner_names_first false with use_vllm"
            )
        bases = {
            "planner": check_model(model_args.model),
            "reasoner": check_model(arguments.reasoner_model or model_args.model),
        }
        problems = training_problems(data_args)
    except SetupError as error:
        sys.exit(f"error: {error}")
    output = Path(config.output_dir)
    write_resolved_config(str(output), model_args, data_args, arguments, config)
    latest: dict[str, str | None] = {"planner": None, "reasoner": None}
    for number, agent in enumerate(arguments.schedule, start=1):
        folder = output / f"phase-{number}-{agent}"
        if (folder / "adapter_model.safetensors").is_file():
            latest[agent] = str(folder)  # finished before: resume after it
            continue
        other = "reasoner" if agent == "planner" else "planner"
        frozen = HFBackend(str(bases[other]), adapter=latest[other])
        rows = phase_rows(agent, problems, arguments, frozen)
        reward = RolloutReward(agent, arguments, frozen)
        phase_config = copy.deepcopy(config)  # not dataclasses.replace: GRPOConfig derives fields in __post_init__
        phase_config.output_dir, phase_config.max_steps = str(folder), arguments.phase_steps
        if agent == "planner" and arguments.planner_names_first:
            phase_config.generation_kwargs = {
                **(config.generation_kwargs or {}),
                **planner_sampling(bases[agent], arguments),
            }
        model: Any = str(bases[agent])
        peft = lora(model_args)
        if latest[agent]:  # go on training this agent's adapter
            from peft import PeftModel
            from transformers import AutoModelForCausalLM

            model = PeftModel.from_pretrained(
                AutoModelForCausalLM.from_pretrained(bases[agent]), latest[agent], is_trainable=True
            )
            peft = None
        trainer = GRPOTrainer(
            model=model, reward_funcs=[reward], args=phase_config, train_dataset=Dataset.from_list(rows),
            peft_config=peft, callbacks=[metrics_callback(str(folder))],
        )  # fmt: skip
        reward.policy = HFBackend.from_model(trainer.model, trainer.processing_class, name=f"{agent}-in-training")
        resume = model_args.resume and any(folder.glob("checkpoint-*"))
        train_and_save(trainer, str(folder), resume)
        latest[agent] = str(folder)
        frozen.close()
    (output / "phases.json").write_text(json.dumps({"schedule": arguments.schedule, "adapters": latest}, indent=1))
    planner = f"hf:{bases['planner']}#adapter={latest['planner']}"
    print(f"planner adapter: {latest['planner']}; use it with method='rsim', planner='{planner}'")


if __name__ == "__main__":
    main()
