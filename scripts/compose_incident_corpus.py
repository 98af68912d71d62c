# ruff: noqa: E501 - hand-written log lines and reports are data; breaking them would hide what they say
"""How the shipped incident corpus was written: hand-written reports, log lines, components, mitigations and
on-call actions per failure family, with numbers, ranks, model names and wording varied by a seeded random
generator. Run ``python scripts/compose_incident_corpus.py`` to rewrite ``agents/diagnosis/corpus/history.jsonl`` and
``heldout.jsonl`` (deterministic). Not installed: the corpus it writes is data, shipped as it is. The incidents are ours, not real on-call records; categories that users confuse in
practice share report wording here on purpose (slow training: straggler or data loading; loss blow-up:
divergence or low-precision outliers; NCCL hang: desync or network; failed resume: corrupt checkpoint or full
disk; FL accuracy drop: drift or poisoning), so that the report alone does not decide them.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

PER_CATEGORY = 10
HELDOUT_PER_CATEGORY = 3
"""The last three incidents of each category form the held-out split; the first seven are the history."""
FOLDER = Path(__file__).resolve().parents[1] / "agents" / "diagnosis" / "corpus"

MODELS = ["llama-3-8b", "mistral-7b", "qwen2.5-14b", "gpt-neox-20b", "llama-3-70b", "t5-large", "vit-h-14"]
FRAMEWORKS = [
    "pytorch 2.4 FSDP",
    "DeepSpeed ZeRO-2",
    "DeepSpeed ZeRO-3",
    "Megatron-LM",
    "torchrun DDP",
    "HF accelerate",
]


def stamp(r: random.Random, step: int = 0) -> str:
    return f"2026-{r.randint(1, 11):02d}-{r.randint(1, 28):02d} {r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{(step * 7) % 60:02d}"


def train_lines(r: random.Random, steps: int = 4, loss: float = 2.1) -> list[str]:
    start = r.randint(100, 5000)
    return [
        f"{stamp(r, i)} INFO trainer: step {start + i * 10} | loss {loss - i * 0.01:.4f} | lr {3e-4:.1e} | "
        f"tokens/s {r.randint(9000, 12000)}"
        for i in range(steps)
    ]


def csv_text(header: list[str], rows: list[list[Any]]) -> str:
    return "\n".join([",".join(header), *(",".join(str(v) for v in row) for row in rows)])


def step_times(r: random.Random, *, slow: bool, data_wait: bool) -> str:
    workers, rows = r.choice([4, 8]), []
    slow_worker = r.randrange(workers)
    factor = r.uniform(1.6, 2.6)
    for step in range(6):
        for w in range(workers):
            compute = r.uniform(0.9, 1.1) * (factor if slow and w == slow_worker else 1.0)
            wait = r.uniform(0.8, 1.6) if data_wait else r.uniform(0.01, 0.05)
            rows.append([w, step, round(compute + wait, 3), round(wait, 3)])
    return csv_text(["worker", "step", "step_time", "data_time"], rows)


def metrics(r: random.Random, *, nan_at: int | None, grad_spike: bool, memory_growth: bool, gap: bool = False) -> str:
    rows, memory = [], r.uniform(40, 60)
    for step in range(20):
        loss = 2.4 - 0.03 * step + r.uniform(-0.02, 0.02) + (0.15 + 0.02 * step if gap else 0)
        grad = r.uniform(0.8, 1.2)
        if grad_spike and nan_at is not None and nan_at - 3 <= step < nan_at:
            grad *= 10 ** (step - nan_at + 4)
        if nan_at is not None and step >= nan_at:
            loss, grad = "nan", "nan"
        memory += r.uniform(0.8, 1.5) if memory_growth else r.uniform(-0.2, 0.2)
        rows.append(
            [
                step * 50,
                loss if isinstance(loss, str) else round(loss, 4),
                grad if isinstance(grad, str) else round(grad, 3),
                round(memory, 2),
            ]
        )
    return csv_text(["step", "loss", "grad_norm", "memory_gb"], rows)


def activation_stats(r: random.Random, *, hot: bool) -> str:
    channels, hot_ids = 32, r.sample(range(32), r.randint(1, 3))
    rows = [
        [round(r.uniform(0.5, 1.5) * (r.uniform(30, 60) if hot and c in hot_ids else 1.0), 3) for c in range(channels)]
        for _ in range(10)
    ]
    return json.dumps({"layer": f"model.layers.{r.randint(3, 30)}.mlp.down_proj", "channel_max_abs": rows})


def network(r: random.Random, nodes: int, *, lossy: bool) -> str:
    rows, bad = [], (r.randrange(nodes), r.randrange(nodes))
    for s in range(nodes):
        for d in range(nodes):
            if s != d:
                loss = r.uniform(20, 100) if lossy and s in bad else r.uniform(0, 0.3)
                rows.append(
                    [f"node{s}", f"node{d}", round(loss, 1), round(r.uniform(0.05, 0.2) * (30 if loss > 5 else 1), 2)]
                )
    return csv_text(["src", "dst", "loss_pct", "rtt_ms"], rows)


def watchdog_log(r: random.Random, ranks: int, *, desync: bool, reset_hint: bool) -> str:
    seq = r.randint(1000, 40000)
    lagging = r.randrange(ranks)
    lines = train_lines(r, 2)
    op = r.choice(["ALLREDUCE", "ALLGATHER", "_REDUCE_SCATTER_BASE", "BROADCAST"])
    for rank in range(ranks):
        s = seq - 1 if desync and rank == lagging else seq
        lines.append(
            f"[rank{rank}]:[E{r.randint(100, 999)} {stamp(r)}.{r.randint(100000, 999999)} ProcessGroupNCCL.cpp:{r.choice([616, 632, 1537])}] "
            f"[Rank {rank}] Watchdog caught collective operation timeout: WorkNCCL(SeqNum={s}, OpType={op}, NumelIn="
            f"{r.choice([4194304, 1048576, 262144])}, NumelOut={r.choice([4194304, 1048576])}, Timeout(ms)=600000) ran for "
            f"{600000 + r.randint(1, 90)} milliseconds before timing out."
        )
    if reset_hint:
        lines.append(
            f"node{r.randint(1, 3)}:{r.randint(1000, 9999)}:{r.randint(1000, 9999)} [{r.randint(0, 7)}] NCCL WARN NET/IB : Got completion from peer 10.0.{r.randint(0, 9)}.{r.randint(2, 250)}<{r.randint(40000, 60000)}> with error 12, opcode 0, len 0, vendor err 129"
        )
    lines.append("torch.distributed.elastic.multiprocessing.errors.ChildFailedError: train.py FAILED (exitcode: -6)")
    return "\n".join(lines)


def fl_log(r: random.Random, clients: int) -> str:
    rnd = r.randint(20, 80)
    acc_before, acc_after = r.uniform(0.7, 0.85), r.uniform(0.3, 0.5)
    return "\n".join(
        [
            f"INFO :      [ROUND {rnd}]",
            f"INFO :      configure_fit: strategy sampled {clients} clients (out of {clients * 5})",
            f"INFO :      aggregate_fit: received {clients} results and 0 failures",
            f"INFO :      fit progress: ({rnd - 10}, {r.uniform(0.4, 0.7):.3f}, {{'accuracy': {acc_before:.3f}}}, {r.uniform(500, 900):.1f})",
            f"INFO :      fit progress: ({rnd}, {r.uniform(1.5, 2.5):.3f}, {{'accuracy': {acc_after:.3f}}}, {r.uniform(900, 1500):.1f})",
            "WARNING :   No fit_metrics_aggregation_fn provided",
        ]
    )


def fl_round(r: random.Random, *, poisoned: int, drift: bool) -> str:
    n, dim = r.choice([8, 10, 12]), 16
    base = [r.gauss(0, 1) for _ in range(dim)]
    centres = [[r.gauss(0, 1) for _ in range(dim)] for _ in range(4)]
    attackers = set(r.sample(range(n), poisoned))
    mode = r.choice(["flip", "scale"])
    clients = []
    for i in range(n):
        if drift:
            centre = centres[i % 4]
            update = [c + r.gauss(0, 0.3) for c in centre]
            labels = [r.randint(200, 400) if k in (i % 10, (i + 3) % 10) else r.randint(0, 8) for k in range(10)]
        else:
            update = [b + r.gauss(0, 0.3) for b in base]
            labels = [r.randint(80, 120) for _ in range(10)]
        if i in attackers:
            update = [-8 * b for b in base] if mode == "flip" else [25 * u for u in update]
        staleness = r.choice([0, 1, 2]) if not drift else r.choice([0, 1, 3, 6, 9])
        clients.append(
            {
                "id": f"client-{i:03d}",
                "samples": sum(labels),
                "staleness": staleness,
                "label_counts": labels,
                "update": [round(u, 4) for u in update],
            }
        )
    return json.dumps({"round": r.randint(20, 80), "clients": clients})


def model_pair(r: random.Random, *, tampered: bool) -> str:
    trusted = {
        "fc1.weight": [[round(r.gauss(0, 0.2), 4) for _ in range(6)] for _ in range(8)],
        "fc1.bias": [round(r.gauss(0, 0.05), 4) for _ in range(8)],
        "fc2.weight": [[round(r.gauss(0, 0.2), 4) for _ in range(8)] for _ in range(3)],
    }
    received = {
        k: [[v + r.gauss(0, 0.002) for v in row] if isinstance(row, list) else row + r.gauss(0, 0.002) for row in rows]
        for k, rows in trusted.items()
    }
    if tampered:
        received["fc1.weight"] = [[round(r.uniform(8, 12), 3) for _ in range(6)] for _ in range(8)]
        received["fc1.bias"] = [round(-r.uniform(40, 60), 3) for _ in range(8)]
    return json.dumps({"trusted": trusted, "received": received})


def expert_stats(r: random.Random, *, over: bool) -> str:
    experts = r.choice([8, 16])
    return json.dumps(
        {
            "expert_seconds": [round(r.uniform(0.2, 1.2), 3) for _ in range(experts)],
            "expert_memory_gb": [round(r.uniform(0.6, 1.2), 2) for _ in range(experts)],
            "memory_options_gb": [2, 4, 8, 16, 32],
            "deployed_memory_gb": r.choice([32]) if over else 8,
            "slo_seconds": 3.0,
            "price_per_gb_second": 1.6e-5,
        }
    )


def manifest(r: random.Random, *, mismatch: bool, truncated: bool) -> str:
    files = []
    for shard in range(r.randint(2, 4)):
        size = r.randint(2_000_000_000, 9_000_000_000)
        digest = "".join(r.choice("0123456789abcdef") for _ in range(64))
        bad = shard == 0
        files.append(
            {
                "name": f"model-{shard + 1:05d}-of-00004.safetensors",
                "expected_size": size,
                "size": size - r.randint(10**8, 10**9) if truncated and bad else size,
                "expected_sha256": digest,
                "sha256": (
                    "".join(r.choice("0123456789abcdef") for _ in range(64))
                    if (mismatch or truncated) and bad
                    else digest
                ),
            }
        )
    return json.dumps({"step": r.randint(1000, 90000), "files": files})


def df(r: random.Random, *, full: bool) -> str:
    used = 100 if full else r.randint(40, 80)
    return (
        "\n".join(
            [
                "Filesystem      Size  Used Avail Use% Mounted on",
                f"/dev/nvme0n1p1  1.8T  {r.randint(300, 900)}G  {r.randint(500, 1400)}G  {r.randint(20, 60)}% /",
                f"fs-{r.randint(100, 999)}.lustre:/ckpt  {r.choice([20, 40, 80])}T  {'full' if full else 'some'}  {'0' if full else '9.1T'}  {used}% /checkpoints",
                "tmpfs            252G     0  252G   0% /dev/shm",
            ]
        )
        .replace("full", f"{r.randint(20, 80)}T")
        .replace("some", f"{r.randint(5, 15)}T")
    )


def packages(r: random.Random, *, drift: bool) -> tuple[str, str]:
    pins = {
        "torch": "2.4.1",
        "transformers": "4.44.2",
        "flash-attn": "2.6.3",
        "accelerate": "0.34.2",
        "deepspeed": "0.15.1",
        "vllm": "0.6.1",
    }
    installed = dict(pins)
    if drift:
        package = r.choice(list(pins))
        installed[package] = {
            "torch": "2.5.0",
            "transformers": "4.46.0",
            "flash-attn": "2.5.8",
            "accelerate": "1.0.0",
            "deepspeed": "0.14.0",
            "vllm": "0.6.3",
        }[package]
    freeze = "\n".join(f"{k}=={v}" for k, v in sorted({**installed, "numpy": "1.26.4", "safetensors": "0.4.5"}.items()))
    return freeze, "\n".join(f"{k}=={v}" for k, v in pins.items())


def workload(r: random.Random, kind: str, **facts: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"kind": kind}
    if kind != "federated":
        base.update(model=r.choice(MODELS), gpus=r.choice([8, 16, 32, 64]), framework=r.choice(FRAMEWORKS))
    base.update(facts)
    return base


def action(step: int, tool: str, observation: str, **arguments: Any) -> dict[str, Any]:
    return {"step": step, "tool": tool, "arguments": arguments, "observation": observation}


# --- one function per family; each returns (report, workload, artifacts, actions, component, reason, mitigation)


def slow_training(r: random.Random, category: str) -> dict[str, Any]:
    drop = r.randint(30, 60)
    report = r.choice(
        [
            f"Training throughput dropped about {drop}% since this morning; steps take much longer and GPU util hovers around {r.randint(35, 60)}%.",
            f"Our {r.choice(MODELS)} pretraining run got slow: tokens/s went from {r.randint(10, 12)}k to {r.randint(4, 7)}k with no code change.",
            f"Iteration time nearly doubled overnight on the {r.choice([8, 16, 32])}-GPU job, nothing in the logs looks like an error.",
            f"Step time is way up ({drop}% slower) and nvidia-smi shows the GPUs idle part of the time. What is holding the job back?",
        ]
    )
    if r.random() < 0.3:
        report += " " + (
            r.choice(["One node's fans were loud yesterday.", "A node was swapped in the maintenance window."])
            if category == "straggler"
            else r.choice(
                ["We moved the dataset to a new bucket last week.", "We switched to on-the-fly tokenisation."]
            )
        )
    straggler = category == "straggler"
    artifacts = {
        "train.log": "\n".join(train_lines(r, 5)),
        "step_times.csv": step_times(r, slow=straggler, data_wait=not straggler),
    }
    actions = [
        action(
            1,
            "worker_step_spread",
            "one worker far slower than the rest"
            if straggler
            else "all workers spend most of each step waiting for data",
            artifact="step_times.csv",
        ),
    ]
    if straggler:
        component, reason = r.choice(
            [
                ("worker node", "one node's GPUs were thermally throttled"),
                ("worker node", "a degraded PCIe link on one node"),
                ("worker node", "a noisy neighbour process on one node"),
            ]
        )
        mitigation = "Drain or replace the slow node; meanwhile rebalance per-worker batch sizes (LB-BSP) so the others do not wait."
    else:
        component, reason = r.choice(
            [
                ("dataloader", "too few dataloader workers for on-the-fly tokenisation"),
                ("dataloader", "remote object storage reads throttled"),
                ("dataloader", "dataset shards on a slow network filesystem"),
            ]
        )
        mitigation = "Raise num_workers and prefetch_factor, pre-tokenise the data, or stage shards on local NVMe."
    return dict(
        report=report,
        workload=workload(r, r.choice(["training", "fine-tuning"])),
        artifacts=artifacts,
        actions=actions,
        component=component,
        reason=reason,
        mitigation=mitigation,
    )


def loss_blowup(r: random.Random, category: str) -> dict[str, Any]:
    step = r.randint(1000, 30000)
    report = r.choice(
        [
            f"Loss went to NaN around step {step} after looking fine; we restarted from the last checkpoint and it happened again.",
            f"Training loss spiked and then became nan at step {step}. Grad clipping is on. What is going on?",
            f"Our run diverged: loss jumped from ~2.1 to nan near step {step}.",
            f"Loss curve blew up around step {step} and the run is now producing NaN losses.",
        ]
    )
    divergence = category == "loss_divergence"
    precision = r.choice(["bf16", "bf16", "fp8"]) if divergence else r.choice(["fp8", "nvfp4"])
    if r.random() < 0.3:
        report += " " + (
            f"We raised the learning rate to {r.choice(['6e-4', '1e-3', '3e-3'])} for this run."
            if divergence
            else f"It only happens since we switched the matmuls to {precision}."
        )
    nan_at = r.randint(12, 17)
    artifacts = {
        "train.log": "\n".join(
            [
                *train_lines(r, 3),
                f"{stamp(r)} WARNING trainer: Loss is nan at step {step}, skipping update",
                f"[deepspeed] OVERFLOW! Rank 0 Skipping step. Attempted loss scale: {2 ** r.randint(10, 16)}, reducing to {2 ** r.randint(4, 9)}",
            ]
        ),
        "metrics.csv": metrics(r, nan_at=nan_at, grad_spike=divergence, memory_growth=False, gap=not divergence),
    }
    if not divergence or r.random() < 0.6:
        artifacts["activation_stats.json"] = activation_stats(r, hot=not divergence)
    actions = [
        action(
            1,
            "metric_anomalies",
            "grad norm exploded before the NaN" if divergence else "grad norm flat, loss above the bf16 baseline",
            artifact="metrics.csv",
            column="grad_norm",
        )
    ]
    if "activation_stats.json" in artifacts:
        actions.append(
            action(
                2,
                "hot_channels",
                "no persistent hot channels" if divergence else "a few channels far above the rest at every step",
                artifact="activation_stats.json",
            )
        )
    if divergence:
        component, reason = r.choice(
            [
                ("optimizer", "learning rate too high for the batch size"),
                ("optimizer", "warm-up removed, Adam second moments not settled"),
                ("data", "a shard of corrupted samples with extreme token ids"),
            ]
        )
        mitigation = "Lower the learning rate or restore warm-up, clip gradients harder, and restart from a checkpoint before the spike; skip bad data if a shard is to blame."
    else:
        component, reason = ("quantization", f"{precision} blocks clip a few persistent outlier channels")
        mitigation = "Keep the hot channels in higher precision (hot-channel patch) or rotate/smooth activations before quantizing; fall back to bf16 for the affected layers."
    return dict(
        report=report,
        workload=workload(r, r.choice(["training", "fine-tuning"]), precision=precision),
        artifacts=artifacts,
        actions=actions,
        component=component,
        reason=reason,
        mitigation=mitigation,
    )


def nccl_hang(r: random.Random, category: str) -> dict[str, Any]:
    ranks = r.choice([4, 8])
    report = r.choice(
        [
            "The job hangs for 10 minutes and then every rank dies with an NCCL watchdog timeout.",
            f"Multi-node training on {ranks} ranks stalls and crashes with 'Watchdog caught collective operation timeout'.",
            "Our distributed run froze mid-epoch, then torchrun killed everything with exit code -6 after the NCCL timeout.",
            "All-reduce timeout after exactly 600000 ms, the run restarts and hits it again an hour later.",
        ]
    )
    desync = category == "collective_timeout"
    if r.random() < 0.3:
        report += " " + (
            "We added an eval branch that only runs on rank 0 last week."
            if desync
            else "The network team had maintenance on the spine switches."
        )
    artifacts = {"rank_logs.txt": watchdog_log(r, ranks, desync=desync, reset_hint=not desync and r.random() < 0.5)}
    if not desync or r.random() < 0.6:
        artifacts["nccl_probe.csv"] = network(r, 4, lossy=not desync)
    actions = [
        action(
            1,
            "collective_sequence",
            "ranks stuck at different SeqNum" if desync else "all ranks at the same SeqNum",
            artifact="rank_logs.txt",
        )
    ]
    if "nccl_probe.csv" in artifacts:
        actions.append(
            action(
                2,
                "network_probe",
                "no packet loss" if desync else "heavy packet loss between two nodes",
                artifact="nccl_probe.csv",
            )
        )
    if desync:
        component, reason = r.choice(
            [
                ("training code", "a collective called on only some ranks (rank-0-only eval)"),
                ("training code", "uneven number of batches per rank, one rank skipped an all-reduce"),
            ]
        )
        mitigation = "Make every rank call the same collectives in the same order (guard rank-specific code, drop_last or pad uneven data); TORCH_NCCL_DESYNC_DEBUG=1 shows the mismatch."
    else:
        component, reason = r.choice(
            [
                ("network", "a flapping InfiniBand link between two nodes"),
                ("network", "a spine switch dropping packets"),
            ]
        )
        mitigation = "Take the affected nodes or link out of the pool and rerun the NCCL tests; ask the network team to replace the link."
    return dict(
        report=report,
        workload=workload(r, "training"),
        artifacts=artifacts,
        actions=actions,
        component=component,
        reason=reason,
        mitigation=mitigation,
    )


def failed_resume(r: random.Random, category: str) -> dict[str, Any]:
    report = r.choice(
        [
            "Resuming from the latest checkpoint fails with 'PytorchStreamReader failed reading zip archive'.",
            "The job crashed and now cannot load its last checkpoint; the error says the archive is broken.",
            "Loading the step checkpoint gives 'failed finding central directory'. Earlier checkpoints load fine.",
            "Our restart keeps failing at checkpoint load, something is wrong with the saved files.",
        ]
    )
    disk = category == "disk_full"
    if r.random() < 0.3:
        report += " " + (
            "The checkpoint volume is shared with other teams."
            if disk
            else "We copied the checkpoints to a new cluster with rsync."
        )
    lines = [
        *train_lines(r, 2),
        "Traceback (most recent call last):",
        '  File "/workspace/train.py", line 212, in <module>',
        "    state = torch.load(path, map_location='cpu')",
        "RuntimeError: PytorchStreamReader failed reading zip archive: failed finding central directory",
    ]
    if disk and r.random() < 0.4:
        lines.insert(
            2, f"OSError: [Errno 28] No space left on device: '/checkpoints/step_{r.randint(1000, 9000)}/optimizer.pt'"
        )
    artifacts = {"resume.log": "\n".join(lines), "manifest.json": manifest(r, mismatch=not disk, truncated=disk)}
    if disk or r.random() < 0.7:
        artifacts["df.txt"] = df(r, full=disk)
    actions = [
        action(
            1,
            "checkpoint_manifest",
            "shard shorter than recorded" if disk else "shard hash differs, size matches",
            artifact="manifest.json",
        )
    ]
    if "df.txt" in artifacts:
        actions.append(
            action(2, "disk_usage", "/checkpoints at 100%" if disk else "plenty of space", artifact="df.txt")
        )
    if disk:
        component, reason = ("storage", "the checkpoint volume filled up during the save, leaving a truncated file")
        mitigation = "Free space or raise the quota, keep only the last k checkpoints, write to a temporary name and rename after a successful save."
    else:
        component, reason = r.choice(
            [
                ("checkpoint", "an interrupted copy left a shard with wrong bytes"),
                ("checkpoint", "a preempted save wrote a partial shard"),
            ]
        )
        mitigation = "Resume from the previous good checkpoint; verify hashes after every save and copy, and save atomically (temporary name, then rename)."
    return dict(
        report=report,
        workload=workload(r, r.choice(["training", "fine-tuning"])),
        artifacts=artifacts,
        actions=actions,
        component=component,
        reason=reason,
        mitigation=mitigation,
    )


def fl_accuracy(r: random.Random, category: str) -> dict[str, Any]:
    report = r.choice(
        [
            "Global model accuracy in our federated run dropped from ~0.8 to ~0.4 over the last rounds.",
            "Federated training regressed: the aggregated model gets worse every round since round 30.",
            "FL accuracy collapsed after we onboarded new clients. The server logs show no failures.",
            "The federated global model's validation loss keeps climbing even though all clients report fine.",
        ]
    )
    poisoned = category == "poisoned_update"
    if r.random() < 0.3:
        report += " " + (
            "One hospital's updates look much larger than others'."
            if poisoned
            else "The new clients are phones from a different region."
        )
    clients = r.choice([8, 10, 12])
    artifacts = {
        "server.log": fl_log(r, clients),
        "round_updates.json": fl_round(r, poisoned=r.randint(1, 2) if poisoned else 0, drift=not poisoned),
    }
    if r.random() < 0.3:
        artifacts["model_check.json"] = model_pair(r, tampered=False)
    actions = [
        action(
            1,
            "fl_update_review",
            "one or two updates far from the rest"
            if poisoned
            else "no single outlier, clients disagree broadly, labels skewed",
            artifact="round_updates.json",
        )
    ]
    if poisoned:
        actions.append(
            action(
                2, "quarantine_clients", "aggregate recovers without the flagged clients", artifact="round_updates.json"
            )
        )
        component, reason = ("fl client", "a malicious or broken client sent sign-flipped or scaled updates")
        mitigation = "Quarantine the flagged clients, aggregate with a robust rule (FedReview, trimmed mean or Krum) and audit those clients."
    else:
        component, reason = r.choice(
            [
                ("fl clients", "non-IID data across clients pulls local models apart"),
                ("fl clients", "stale updates from slow clients dominate aggregation"),
            ]
        )
        mitigation = "Use drift-aware aggregation (FedProx/SCAFFOLD, Calibre), down-weight stale updates (Pisces), or cluster clients."
    return dict(
        report=report,
        workload=workload(r, "federated", framework="flower", clients=clients * 5),
        artifacts=artifacts,
        actions=actions,
        component=component,
        reason=reason,
        mitigation=mitigation,
    )


def gpu_oom(r: random.Random, category: str) -> dict[str, Any]:
    gib = r.choice([1.0, 2.0, 4.5, 8.0])
    lines = [
        *train_lines(r, 2),
        f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {gib:.2f} GiB. GPU {r.randint(0, 7)} has a total capacity of 79.15 GiB of which {r.uniform(0.1, 1.5):.2f} GiB is free. Including non-PyTorch memory, this process has {r.uniform(77, 79):.2f} GiB memory in use.",
    ]
    if r.random() < 0.4:
        lines = [
            *train_lines(r, 1),
            "ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine.",
        ]
    leak = r.random() < 0.5
    report = r.choice(
        [
            "We get CUDA out of memory a few hours into the run.",
            "The job dies with OOM on one GPU.",
            "Fine-tuning crashes with out of memory although the same config worked last week.",
            "vLLM refuses to start / crashes with memory errors.",
        ]
    )
    artifacts = {
        "train.log": "\n".join(lines),
        "metrics.csv": metrics(r, nan_at=None, grad_spike=False, memory_growth=leak),
    }
    actions = [
        action(1, "log_search", "CUDA out of memory on one rank", pattern="out of memory"),
        action(
            2,
            "metric_anomalies",
            "memory grows every step" if leak else "memory flat near the limit",
            artifact="metrics.csv",
            column="memory_gb",
        ),
    ]
    component, reason = (
        ("gpu memory", "tensors kept alive across steps (a leak in the eval loop)")
        if leak
        else ("gpu memory", "activation memory of a longer sequence length exceeds the GPU")
    )
    mitigation = "Enable activation checkpointing, lower the micro-batch or sequence length, and free references held across steps (detach logged tensors)."
    return dict(
        report=report,
        workload=workload(r, r.choice(["training", "fine-tuning", "inference"])),
        artifacts=artifacts,
        actions=actions,
        component=component,
        reason=reason,
        mitigation=mitigation,
    )


def version_mismatch(r: random.Random, category: str) -> dict[str, Any]:
    error = r.choice(
        [
            "ImportError: /usr/local/lib/python3.11/site-packages/flash_attn_2_cuda.cpython-311-x86_64-linux-gnu.so: undefined symbol: _ZN3c104cuda9SetDeviceEi",
            "RuntimeError: The NVIDIA driver on your system is too old (found version 11040). Please update your GPU driver.",
            "AttributeError: module 'transformers.modeling_utils' has no attribute 'Conv1D'",
            "ImportError: cannot import name 'is_torch_fx_available' from 'transformers.utils'",
        ]
    )
    freeze, requirements = packages(r, drift=True)
    report = r.choice(
        [
            "After rebuilding the container the job fails at import.",
            "The training script crashes immediately on start-up with an import error.",
            "New image, same code, now it does not even start.",
            "Our inference server pod crash-loops right after the upgrade.",
        ]
    )
    artifacts = {
        "startup.log": "\n".join(
            ["Traceback (most recent call last):", '  File "/workspace/train.py", line 3, in <module>', error]
        ),
        "pip_freeze.txt": freeze,
        "requirements.txt": requirements,
    }
    actions = [
        action(
            1,
            "package_versions",
            "installed versions differ from the pins",
            artifact="pip_freeze.txt",
            required="requirements.txt",
        )
    ]
    return dict(
        report=report,
        workload=workload(r, r.choice(["training", "inference", "fine-tuning"])),
        artifacts=artifacts,
        actions=actions,
        component="python environment",
        reason="the image installed versions other than the pinned ones (ABI mismatch)",
        mitigation="Rebuild the image from the lock file (pip install -r requirements.txt --no-deps), and build CUDA extensions against the installed torch.",
    )


def moe_cost(r: random.Random, category: str) -> dict[str, Any]:
    report = r.choice(
        [
            "Our serverless MoE inference bill roughly tripled this month with the same traffic.",
            "Cost per 1k tokens of the Mixtral endpoint went way up after the redeploy.",
            "Serving the MoE model on functions costs much more than our estimate.",
            "Finance flagged the expert-serving functions as the top cost item.",
        ]
    )
    artifacts = {
        "serve.log": "\n".join(
            [
                f"INFO {stamp(r)} vllm.engine: Avg prompt throughput: {r.uniform(100, 900):.1f} tokens/s, Avg generation throughput: {r.uniform(50, 300):.1f} tokens/s",
                f"INFO {stamp(r)} router: {r.randint(8, 16)} experts active, {r.randint(2, 4)} per token",
            ]
        ),
        "experts.json": expert_stats(r, over=True),
    }
    actions = [action(1, "moe_cost", "deployment costs far more than the Remoe plan", artifact="experts.json")]
    return dict(
        report=report,
        workload=workload(r, "inference", serving="serverless functions"),
        artifacts=artifacts,
        actions=actions,
        component="expert placement",
        reason="expert functions deployed with far more memory than the SLO needs",
        mitigation="Re-plan function memory and replicas (Remoe), predict expert activation to pre-warm only the experts needed.",
    )


def leakage(r: random.Random, category: str) -> dict[str, Any]:
    report = r.choice(
        [
            "A client in our federated study flagged the global model it received as suspicious.",
            "Privacy audit: the server-sent model at round 52 behaves oddly on client data.",
            "One participant says the aggregated model's first layer looks nothing like last round's.",
            "We suspect the FL server is trying to extract client data from gradients.",
        ]
    )
    artifacts = {"server.log": fl_log(r, 10), "model_check.json": model_pair(r, tampered=True)}
    actions = [action(1, "model_integrity", "first layer rewritten with huge weights", artifact="model_check.json")]
    return dict(
        report=report,
        workload=workload(r, "federated", framework="flower", clients=50),
        artifacts=artifacts,
        actions=actions,
        component="fl server",
        reason="a malicious server planted trap weights so client gradients reveal inputs",
        mitigation="Reject the model, check every received model against the last trusted one, and use secure aggregation with DP noise.",
    )


def hardware_fault(r: random.Random, category: str) -> dict[str, Any]:
    gpu = r.randint(0, 7)
    bus = f"0000:{r.choice(['1b', '3b', '5e', '86', 'af', 'd8'])}:00"
    error = r.choice(
        [
            f"NVRM: Xid (PCI:{bus}): 79, pid=1234, GPU has fallen off the bus.",
            f"NVRM: Xid (PCI:{bus}): 48, pid={r.randint(1000, 9999)}, An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer.",
            f"NVRM: Xid (PCI:{bus}): 94, pid={r.randint(1000, 9999)}, Contained: CE User Channel (0x9). RST: No, D-RST: No",
            f"Unable to determine the device handle for GPU{bus}.0: Unknown Error",
        ]
    )
    lines = [
        *train_lines(r, 2),
        f"RuntimeError: CUDA error: unspecified launch failure (rank {gpu})",
        f"[dmesg] {error}",
    ]
    report = r.choice(
        [
            "One node keeps killing the job; nvidia-smi on it looks wrong.",
            "The run dies on the same machine every few hours with a CUDA error.",
            "A GPU disappeared in the middle of training.",
            "Inference pods on one host crash with CUDA errors; other hosts are fine.",
        ]
    )
    actions = [action(1, "log_search", "the driver reports an Xid on one GPU", pattern="Xid|fallen off|uncorrectable")]
    return dict(
        report=report,
        workload=workload(r, r.choice(["training", "inference", "fine-tuning"])),
        artifacts={"train.log": "\n".join(lines)},
        actions=actions,
        component="gpu",
        reason="a failing GPU (the driver's Xid: bus drop or uncorrectable memory error)",
        mitigation="Drain the node, reset or replace the GPU (RMA on repeated Xid 48/79), and resume from the last checkpoint.",
    )


def bad_input_data(r: random.Random, category: str) -> dict[str, Any]:
    classes = r.choice([2, 5, 10, 80, 1000])
    error = r.choice(
        [
            f"../aten/src/ATen/native/cuda/Loss.cu:240: nll_loss_forward_reduce_cuda_kernel_2d: block: [0,0,0], thread: [{r.randint(0, 31)},0,0] Assertion `t >= 0 && t < n_classes` failed.",
            f"IndexError: Target {classes} is out of bounds.",
            f"PIL.UnidentifiedImageError: cannot identify image file '/data/train/img_{r.randint(0, 999999):06d}.jpg'",
            "RuntimeError: CUDA error: device-side assert triggered",
        ]
    )
    report = r.choice(
        [
            "Training on our new dataset crashes in the first epoch.",
            "After adding the new shard the job fails in the loss.",
            "The fine-tune dies with a CUDA assert right after the data refresh.",
            "It crashes on some batches, not others, since we relabelled the data.",
        ]
    )
    actions = [action(1, "log_search", "the loss kernel asserts on a label", pattern="n_classes|out of bounds|assert")]
    return dict(
        report=report,
        workload=workload(r, r.choice(["training", "fine-tuning"])),
        artifacts={"train.log": "\n".join([*train_lines(r, 2), error])},
        actions=actions,
        component="training data",
        reason=f"labels outside [0, {classes}) or unreadable files in the new data",
        mitigation="Validate the data before training (label range, decodable files), fix or drop the bad records.",
    )


def launch_config(r: random.Random, category: str) -> dict[str, Any]:
    error = r.choice(
        [
            "RuntimeError: CUDA error: invalid device ordinal",
            "RuntimeError: Default process group has not been initialized, please make sure to call init_process_group.",
            f"RuntimeError: The server socket has failed to listen on any local network address. port: {r.randint(20000, 30000)}, useIpv6: 0, code: -98, name: EADDRINUSE, message: Address already in use",
            "torch.distributed.DistBackendError: NCCL error: invalid usage, NCCL WARN Duplicate GPU detected : rank 1 and rank 0 both on CUDA device 0",
        ]
    )
    report = r.choice(
        [
            "The job fails right at start-up since we moved it to the new launcher.",
            "Our multi-GPU script dies before the first step.",
            "It works on one GPU but not with torchrun.",
            "After changing the job template nothing starts.",
        ]
    )
    actions = [
        action(
            1,
            "log_search",
            "the launcher's environment does not match the devices",
            pattern="ordinal|process group|in use|Duplicate GPU",
        )
    ]
    return dict(
        report=report,
        workload=workload(r, r.choice(["training", "fine-tuning", "inference"])),
        artifacts={"launch.log": "\n".join(["Traceback (most recent call last):", error])},
        actions=actions,
        component="launch configuration",
        reason="devices, ranks or ports the launcher passed do not match the machine",
        mitigation="Launch with torchrun (one process per visible GPU), set LOCAL_RANK/CUDA_VISIBLE_DEVICES consistently, and use a free MASTER_PORT.",
    )


FAMILIES = {
    "straggler": slow_training, "dataloader_stall": slow_training,
    "loss_divergence": loss_blowup, "low_precision_outliers": loss_blowup,
    "collective_timeout": nccl_hang, "network_partition": nccl_hang,
    "checkpoint_corruption": failed_resume, "disk_full": failed_resume,
    "fl_client_drift": fl_accuracy, "poisoned_update": fl_accuracy,
    "gpu_oom": gpu_oom, "version_mismatch": version_mismatch, "moe_serving_cost": moe_cost, "gradient_leakage": leakage,
    "hardware_fault": hardware_fault, "bad_input_data": bad_input_data, "launch_config": launch_config,
}  # fmt: skip


def compose(seed: int = 2026) -> tuple[list[dict], list[dict]]:
    history, heldout = [], []
    for category, family in FAMILIES.items():
        for i in range(PER_CATEGORY):
            r = random.Random(f"{seed}:{category}:{i}")
            parts = family(r, category)
            record = {
                "id": f"{category}-{i + 1:02d}",
                "report": parts["report"],
                "workload": parts["workload"],
                "artifacts": parts["artifacts"],
                "actions": parts["actions"],
                "root_cause": {"category": category, "component": parts["component"], "reason": parts["reason"]},
                "mitigation": parts["mitigation"],
            }
            (heldout if i >= PER_CATEGORY - HELDOUT_PER_CATEGORY else history).append(record)
    return history, heldout


def main() -> None:
    history, heldout = compose()
    for name, records in (("history.jsonl", history), ("heldout.jsonl", heldout)):
        (FOLDER / name).write_text("".join(json.dumps(record) + "\n" for record in records))
        print(f"{name}: {len(records)} incidents")


if __name__ == "__main__":
    main()
