"""The evals harness: ``python -m thoughtgraph.evals run --dataset gsm8k --method cot --limit 50``."""
