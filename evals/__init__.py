"""The evals harness: ``python -m evals run --dataset gsm8k --method cot --limit 50``."""
