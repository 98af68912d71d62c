"""GG confidence calibration: GRPO with LoRA, rewarded by ``trainers.rewards.ConfidenceReward`` (1 + c^4 when
right, 1 - 10 c^4 when wrong), so that the model's token confidence tracks its correctness.

    python -m thoughtgraph.trainers.gg_calibrate --config trainers/configs/gg_calibrate_tiny.yaml --max_steps 2 \\
        --output_dir runs/gg
    python -m thoughtgraph.trainers.gg_calibrate --config trainers/configs/gg_calibrate_tiny.yaml \\
        --output_dir runs/gg --resume

The paper's set-up is the default config (``gg_calibrate.yaml``): 8 generations per prompt, LoRA r = 128,
alpha = 128, learning rate 2e-6. The run folder holds the adapter (load it with ``hf:MODEL#adapter=DIR``), the
resolved config, ``metrics.jsonl``, ``training.png`` and ``checkpoint-*`` folders. Token probabilities for the
reward come from a forward pass of the current policy (TRL does not hand them to reward functions).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from thoughtgraph.trainers.common import (
    DataArguments,
    ModelArguments,
    SetupError,
    check_model,
    lora,
    metrics_callback,
    parse,
    resume_point,
    train_and_save,
    training_problems,
    write_resolved_config,
)
from thoughtgraph.trainers.rewards import (
    DEFAULT_BOUNDARY,
    ConfidenceReward,
    correctness_reward,
    stated_answer_reward,
)


@dataclass
class CalibrationArguments:
    boundary: str = field(default=DEFAULT_BOUNDARY, metadata={"help": "Text that starts a new reasoning step."})
    format_reward_weight: float = field(default=0.0, metadata={"help": "Weight of the stated-answer reward."})
    correctness_reward_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight of a plain correctness reward (1 right, 0 wrong) beside GG's; not in the paper (0). GG's "
            "reward alone pays a hesitant wrong answer almost as well as a right one (1 - 10 c^4 is near 1 for "
            "small c), so a model that is mostly wrong can gain by hesitating and lose accuracy."
        },
    )


class PolicyLogprobs:
    """The policy's log-probabilities of its sampled completion tokens (temperature 1, no gradient)."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer

    def __call__(self, prompts: list[Any], completion_ids: list[list[int]]) -> list[tuple[list[str], list[float]]]:
        import torch

        tokenizer = self.trainer.processing_class
        model = self.trainer.accelerator.unwrap_model(self.trainer.model)
        results = []
        with torch.no_grad():
            for prompt, ids in zip(prompts, completion_ids, strict=True):
                ids = list(ids)
                if not ids:
                    results.append(([], []))
                    continue
                text = (
                    prompt
                    if isinstance(prompt, str)
                    else tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
                )
                prefix = tokenizer(text, add_special_tokens=False)["input_ids"]
                inputs = torch.tensor([prefix + ids], device=model.device)
                logits = model(input_ids=inputs).logits[0, len(prefix) - 1 : -1].float()
                logprobs = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(ids, device=model.device)[:, None])
                results.append(([tokenizer.decode([t]) for t in ids], logprobs[:, 0].tolist()))
        return results


def main(argv: list[str] | None = None) -> None:
    from trl import GRPOConfig, GRPOTrainer

    try:
        model_args, data_args, calibration, config = parse(
            ModelArguments, DataArguments, CalibrationArguments, GRPOConfig, argv=argv
        )
        folder = check_model(model_args.model)
        resume = resume_point(config.output_dir, model_args.resume)
        dataset = training_problems(data_args)
    except SetupError as error:
        sys.exit(f"error: {error}")
    reward = ConfidenceReward(lambda prompts, ids: [], calibration.boundary)
    rewards: list[Any] = [reward]
    weights = [1.0]
    for extra, weight in ((stated_answer_reward, calibration.format_reward_weight),
                          (correctness_reward, calibration.correctness_reward_weight)):  # fmt: skip
        if weight:
            rewards.append(extra)
            weights.append(weight)
    config.reward_weights = weights
    write_resolved_config(config.output_dir, model_args, data_args, calibration, config)
    trainer = GRPOTrainer(
        model=str(folder), reward_funcs=rewards, args=config, train_dataset=dataset, peft_config=lora(model_args),
        callbacks=[metrics_callback(config.output_dir)],
    )  # fmt: skip
    reward.token_logprobs = PolicyLogprobs(trainer)
    train_and_save(trainer, config.output_dir, resume)
    print(f"adapter saved in {config.output_dir}; load it with hf:{folder}#adapter={config.output_dir}")


if __name__ == "__main__":
    main()
