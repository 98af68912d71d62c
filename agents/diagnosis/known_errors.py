"""Known error strings: what CUDA, NCCL, PyTorch, DeepSpeed, vLLM, the kernel and Flower print for each
root cause, matched over a report's own text and its logs.

Real failure reports are prose with one pasted traceback or a few log lines; the strings below are the ones
those libraries emit (``torch.OutOfMemoryError: CUDA out of memory``, the NCCL watchdog's ``Watchdog caught
collective operation timeout``, ``PytorchStreamReader failed reading zip archive``, ``[Errno 28] No space
left on device``, the driver's ``Xid 79``, ...) plus a few phrases people use for the same failure. Each is
written from the libraries' messages and their documentation, not mined from any evaluated incident.

A match is evidence, not a verdict: ``decisive`` strings (the library names the failure) multiply a cause's
odds by ``DECISIVE_RATIO``, ``suggestive`` ones (a symptom several causes share, or a user's phrase) by
``SUGGESTIVE_RATIO``; per cause at most one decisive and two suggestive matches count, so a log that repeats
one line a thousand times is one piece of evidence. ``evidence_ratios`` turns matches into those ratios and
the hypothesise node combines them with the retrieval priors and the model's reading (``graph.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from thoughtgraph.agents.diagnosis.incidents import CATEGORIES

Strength = Literal["decisive", "suggestive"]
DECISIVE_RATIO = 25.0
SUGGESTIVE_RATIO = 2.5
MAX_SUGGESTIVE = 2
MAX_TEXT_CHARS = 200_000


@dataclass(frozen=True)
class KnownError:
    category: str
    strength: Strength
    pattern: re.Pattern[str]
    origin: str
    """Who prints it (or ``phrase`` for a user's wording)."""


def _e(category: str, strength: Strength, origin: str, *patterns: str) -> list[KnownError]:
    return [KnownError(category, strength, re.compile(p, re.IGNORECASE), origin) for p in patterns]


CATALOGUE: tuple[KnownError, ...] = tuple(
    _e("gpu_oom", "decisive", "PyTorch", r"CUDA out of memory", r"\bOutOfMemoryError\b", r"HIP out of memory")
    + _e("gpu_oom", "decisive", "CUDA", r"CUDA error: out of memory", r"CUBLAS_STATUS_ALLOC_FAILED")
    + _e(
        "gpu_oom",
        "decisive",
        "vLLM",
        r"No available memory for the cache blocks",
        r"larger than the maximum number of tokens that can be stored in KV cache",
    )
    + _e("gpu_oom", "suggestive", "phrase", r"\bOOM\b", r"out of (GPU |video )?memory", r"Tried to allocate")
    + _e(
        "collective_timeout",
        "decisive",
        "PyTorch NCCL watchdog",
        r"Watchdog caught collective operation timeout",
        r"ran for \d+ milliseconds before timing out",
        r"NCCL watchdog thread terminated",
        r"ProcessGroupNCCL::WorkNCCL::checkTimeout",
    )
    + _e(
        "collective_timeout",
        "suggestive",
        "phrase",
        r"\bNCCL timeout\b",
        r"collective.{0,30}(hang|timed? ?out)",
        r"(all[_-]?reduce|all[_-]?gather|reduce[_-]?scatter|barrier).{0,40}(hang|stuck|timed? ?out)",
    )
    + _e("straggler", "decisive", "Horovod", r"waiting for (the )?remainder of ranks", r"missing ranks?:")
    + _e(
        "straggler",
        "suggestive",
        "phrase",
        r"straggl",
        r"(slow|low-speed|slowest|lagging) (node|rank|worker|gpu)s?\b",
        r"one (node|rank|worker|gpu) (is )?(much )?slower",
    )
    + _e(
        "dataloader_stall",
        "decisive",
        "PyTorch DataLoader",
        r"DataLoader worker \(pid[^)]*\)( exited)? is killed",
        r"DataLoader process \(pid[^)]*\)",
        r"DataLoader timed out after",
        r"does not have many workers",
    )
    + _e(
        "dataloader_stall",
        "suggestive",
        "phrase",
        r"data ?loader.{0,60}bottleneck",
        r"waiting for (the )?data",
        r"GPU[- ]?util\w*.{0,40}(\b0 ?%|very low|low)",
        r"\bnum_workers?\b",
        r"data loading.{0,30}slow",
    )
    + _e(
        "loss_divergence",
        "decisive",
        "phrase",
        r"loss[^\n]{0,40}\bnan\b",
        r"\bnan\b[^\n]{0,20}loss",
        r"loss (spike|explod|diverg)",
    )
    + _e(
        "loss_divergence",
        "suggestive",
        "phrase",
        r"learning[ _-]?rate",
        r"\bdiverg",
        r"gradient norm.{0,30}(spike|explod)",
    )
    + _e(
        "low_precision_outliers",
        "decisive",
        "phrase",
        r"\b65504\b",
        r"overflow.{0,40}(fp16|float16|half)",
        r"(fp16|float16|half).{0,40}overflow",
    )
    + _e(
        "low_precision_outliers",
        "suggestive",
        "phrase",
        r"\b(fp16|float16|f16|half[- ]precision)\b",
        r"\b(int8|fp8|int4|kv[- ]int8)\b",
        r"quanti[sz]",
        r"\b(bf16|bfloat16)\b.{0,40}(works|fine|no nan)",
        r"\binf\b",
    )
    + _e(
        "checkpoint_corruption",
        "decisive",
        "PyTorch",
        r"PytorchStreamReader failed reading",
        r"failed finding central directory",
        r"invalid load key",
        r"Ran out of input",
    )
    + _e(
        "checkpoint_corruption",
        "decisive",
        "safetensors",
        r"Error while deserializing header",
        r"HeaderTooLarge",
        r"MetadataIncompleteBuffer",
    )
    + _e(
        "checkpoint_corruption",
        "suggestive",
        "phrase",
        r"corrupt",
        r"(incomplete|truncated|partial)(ly)? (download|file|checkpoint|save)",
        r"re-?download",
    )
    + _e("version_mismatch", "decisive", "loader", r"undefined symbol", r"GLIBC(XX)?_\d[\d.]* not found")
    + _e(
        "version_mismatch",
        "decisive",
        "PyTorch extensions",
        r"mismatches the version that was used to compile PyTorch",
        r"was compiled (against|with) .{0,60}but",
    )
    + _e(
        "version_mismatch",
        "decisive",
        "Python",
        r"ImportError: cannot import name",
        r"requires? \w[\w-]*\s*(>=|==|<)\s*\d",
    )
    + _e(
        "version_mismatch",
        "suggestive",
        "phrase",
        r"version (mismatch|conflict)",
        r"incompatib",
        r"\bABI\b",
        r"(upgrade|downgrad)\w*",
        r"has no attribute",
    )
    + _e(
        "disk_full",
        "decisive",
        "OS",
        r"No space left on device",
        r"\bErrno 28\b",
        r"Disk quota exceeded",
        r"\bErrno 122\b",
        r"\bENOSPC\b",
        r"os error 28",
    )
    + _e(
        "disk_full",
        "suggestive",
        "phrase",
        r"(out of|low|no) (disk|disc|storage)( space)?",
        r"disk (is )?full",
        r"ran out of (disk )?space",
        r"storage space",
    )
    + _e(
        "network_partition",
        "decisive",
        "sockets",
        r"Connection reset by peer",
        r"Connection refused",
        r"No route to host",
        r"Network is unreachable",
        r"Name or service not known",
        r"Connection closed by remote peer",
    )
    + _e(
        "network_partition",
        "decisive",
        "PyTorch elastic",
        r"RendezvousConnectionError",
        r"DistNetworkError",
        r"client socket has timed out",
        r"connect\(\) timed out",
        r"TCPStore.{0,40}(reset|refused|timed out)",
    )
    + _e(
        "network_partition",
        "suggestive",
        "NCCL",
        r"unhandled system error",
        r"ncclSystemError",
        r"NCCL_SOCKET_IFNAME",
        r"NCCL WARN Net",
        r"\b(infiniband|RoCE|ibv_\w+|RDMA)\b",
        r"(multi|two|several)[- ]node",
        r"rendezvous",
    )
    + _e(
        "hardware_fault",
        "decisive",
        "NVIDIA driver",
        r"\bXid\b",
        r"fallen off (of )?the bus",
        r"uncorrectable ECC",
        r"Unable to determine the device handle",
        r"ERROR_GPU_IS_LOST|GPU is lost",
        r"PCIe Bus Error",
    )
    + _e(
        "hardware_fault",
        "suggestive",
        "phrase",
        r"overheat",
        r"thermal",
        r"throttl",
        r"CUDA_ERROR_UNKNOWN",
        r"\bECC\b",
        r"faulty (gpu|card|node)",
        r"\bNVRM\b",
    )
    + _e(
        "bad_input_data",
        "decisive",
        "PyTorch CUDA kernels",
        r"t >= 0 && t < n_classes",
        r"cur_target >= 0 && cur_target < n_classes",
        r"Target -?\d+ is out of bounds",
        r"cannot identify image file",
        r"UnidentifiedImageError",
    )
    + _e(
        "bad_input_data",
        "suggestive",
        "phrase",
        r"device-side assert",
        r"index out of range in self",
        r"(my|own|custom|converted) (dataset|data|labels)",
        r"(class|label)s? (id|ids|labels?)?.{0,30}(out of range|invalid|wrong)",
        r"corrupt\w* (image|sample|label|mask|data)",
    )
    + _e(
        "launch_config",
        "decisive",
        "CUDA / PyTorch",
        r"invalid device ordinal",
        r"Default process group has not been initialized",
        r"Address already in use",
        r"Duplicate GPU detected",
        r"Address family not supported by protocol",
        r"no CUDA GPUs are available",
    )
    + _e(
        "launch_config",
        "suggestive",
        "phrase",
        r"CUDA_VISIBLE_DEVICES",
        r"\b(docker|container)\b",
        r"--(net|network)[= ]host",
        r"world[_ ]size",
        r"MASTER_(ADDR|PORT)",
    )
    + _e("fl_client_drift", "decisive", "phrase", r"non[- ]?iid", r"client drift")
    + _e(
        "fl_client_drift",
        "suggestive",
        "Flower / FL",
        r"\bFed(Avg|Prox|BABU|Opt|Nova)\b",
        r"federated",
        r"local (epochs?|steps?)",
        r"\b(shards?|dirichlet)\b",
        r"server[- ]side (evaluation|accuracy)",
    )
    + _e("poisoned_update", "suggestive", "phrase", r"malicious", r"byzantine", r"poison", r"backdoor")
    + _e(
        "gradient_leakage",
        "suggestive",
        "phrase",
        r"gradient (inversion|leakage)",
        r"reconstruct\w* .{0,30}from (the )?gradients",
        r"membership inference",
    )
    + _e(
        "moe_serving_cost",
        "suggestive",
        "phrase",
        r"\b(MoE|mixture[- ]of[- ]experts)\b",
        r"expert (parallel|offload|placement|routing)",
    )
)
assert {e.category for e in CATALOGUE} <= set(CATEGORIES)


@dataclass(frozen=True)
class Match:
    category: str
    strength: Strength
    origin: str
    text: str
    """The matched words, as the report or log has them."""


def matches(text: str) -> list[Match]:
    """Every catalogue entry found in ``text`` (its first ``MAX_TEXT_CHARS`` characters), one match per entry."""
    text = text[:MAX_TEXT_CHARS]
    found = []
    for entry in CATALOGUE:
        hit = entry.pattern.search(text)
        if hit:
            found.append(Match(entry.category, entry.strength, entry.origin, hit.group(0)[:120]))
    return found


def evidence_ratios(found: list[Match]) -> dict[str, float]:
    """Per category, the odds multiplier of its matches: ``DECISIVE_RATIO`` for a decisive one (at most one
    counts) times ``SUGGESTIVE_RATIO`` per suggestive one (at most ``MAX_SUGGESTIVE`` count)."""
    ratios: dict[str, float] = {}
    for category in {m.category for m in found}:
        decisive = any(m.strength == "decisive" for m in found if m.category == category)
        suggestive = min(sum(m.strength == "suggestive" for m in found if m.category == category), MAX_SUGGESTIVE)
        ratios[category] = (DECISIVE_RATIO if decisive else 1.0) * SUGGESTIVE_RATIO**suggestive
    return ratios


def combine(priors: dict[str, float], ratios: dict[str, float], *, floor: float = 0.02) -> dict[str, float]:
    """Priors updated by the ratios, normalised. A category retrieval did not propose starts at ``floor`` when
    some string matched it (so a known error can name a cause the knowledge base has never seen)."""
    if not ratios:
        return dict(priors)
    weights = {c: (priors.get(c, 0.0) + floor) * ratios.get(c, 1.0) for c in set(priors) | set(ratios)}
    total = sum(weights.values())
    return {c: w / total for c, w in sorted(weights.items(), key=lambda item: -item[1])}
