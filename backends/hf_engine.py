"""Continuous refill for transformers models: rows join a running decode batch and leave it when done.

``model.generate`` decodes a fixed batch until its longest row ends, so a row that stops early idles and a
request that arrives meanwhile waits for the whole batch. This engine runs its own loop instead (the ``hf``
backend's ``refill=True``): each step is one forward pass of every live row (one new token each, over a
shared, left-padded ``DynamicCache``); a newcomer's prompt is prefilled alone and its cache is padded into the
batch at the next step; finished rows are dropped from the cache (``batch_select_indices``) and the padding
columns no row needs any more are cut. Each row samples with its own temperature, top_p and seeded generator
(the same draw as ``PerRowSampler``), holds back end-of-sequence tokens until ``min_tokens``, stops at its own
stop strings, stop pattern and token budget (``backends/decoding.py``), and keeps the raw logits' log-probabilities.

Position ids are each row's own token count, so left padding does not move a row's positions; results can
still differ from an unpadded run by float rounding in the padded attention.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from thoughtgraph.backends.decoding import CompletionText, IncrementalDetokenizer
from thoughtgraph.backends.engine_thread import EngineJob, EngineThread, report
from thoughtgraph.backends.types import Result, Usage


@dataclass(kw_only=True)
class HFJob(EngineJob):
    """One request: a seed per sample row, and its rows once prefilled."""

    seeds: list[int]
    rows: list[Row] = field(default_factory=list)


@dataclass(eq=False)
class Row:
    job: HFJob
    generator: Any
    length: int
    """Real tokens in this row's cache: its position ids continue from here."""
    completion: CompletionText
    """The row's text, and where it ends (stop strings, the stop pattern, the budget)."""
    detokenizer: IncrementalDetokenizer
    ids: list[int] = field(default_factory=list)
    done: bool = False


def sample_token(logits: Any, temperature: float, top_p: float, generator: Any) -> int:
    """One row's draw: argmax at temperature 0, else softmax at the temperature, cut to the smallest set of
    tokens whose probability reaches ``top_p``, sampled with the row's own generator."""
    import torch

    logits = logits.float()
    if temperature <= 0:
        return int(torch.argmax(logits))
    probabilities = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        ordered, order = torch.sort(probabilities, descending=True)
        keep = torch.cumsum(ordered, dim=-1) - ordered < top_p
        probabilities = torch.zeros_like(probabilities).scatter(0, order[keep], ordered[keep])
    return int(torch.multinomial(probabilities, 1, generator=generator))


class RefillEngine(EngineThread):
    thread_name = "hf refill"

    def __init__(
        self,
        model: Any,
        *,
        device: str,
        pad_token_id: int,
        end_tokens: set[int],
        max_rows: int,
        model_id: str,
        detokenizer: Callable[[], IncrementalDetokenizer],
    ) -> None:
        self.model = model
        self.device = device
        self.pad = pad_token_id
        self.end_tokens = end_tokens
        self.max_rows = max_rows
        self.model_id = model_id
        self._detokenizer = detokenizer
        self._queue: list[HFJob] = []
        self._rows: list[Row] = []
        self._cache: Any = None
        self._mask: Any = None
        self.steps = 0
        self.batch_rows: list[int] = []
        """Rows in each decode step, for benchmarks and tests."""
        self.columns_cut = 0
        """Padding columns dropped from the cache once no live row needed them, for tests."""
        self._start_thread()

    # -- EngineThread -----------------------------------------------------------------------------

    def _busy(self) -> bool:
        return bool(self._queue or self._rows)

    def _jobs_in_hand(self) -> list[HFJob]:
        return self._queue + [r.job for r in self._rows]

    def _drop_all(self) -> None:
        self._queue, self._rows, self._cache, self._mask = [], [], None, None

    def _release(self) -> None:
        self._drop_all()

    def _open(self, job: HFJob) -> None:
        self._queue.append(job)

    def _admit(self) -> None:
        """Prefill waiting requests while their rows fit (a request larger than the batch runs alone)."""
        while self._queue:
            job = self._queue[0]
            if job.stop.is_set():
                self._queue.pop(0)
                self._finish_job(job)
                continue
            if self._rows and len(self._rows) + job.request.n > self.max_rows:
                return
            self._queue.pop(0)
            self._prefill(job)

    # -- the decode loop --------------------------------------------------------------------------

    def _prefill(self, job: HFJob) -> None:
        import torch

        n = job.request.n
        with torch.inference_mode():
            output = self.model(input_ids=torch.tensor([job.prompt], device=self.device), use_cache=True)
        cache, logits = output.past_key_values, output.logits[:, -1, :]
        if n > 1:
            cache.batch_repeat_interleave(n)
        rows = [
            Row(job, torch.Generator(device=self.device).manual_seed(seed), len(job.prompt),
                CompletionText(job.request), self._detokenizer())
            for seed in job.seeds
        ]  # fmt: skip
        job.rows = rows
        self._merge(cache, len(job.prompt), n)
        self._rows.extend(rows)
        for row in rows:
            self._take(row, logits[0])

    def _merge(self, cache: Any, length: int, count: int) -> None:
        """Pad the batch cache and the newcomer's to one length (on the left) and stack them."""
        import torch

        new_mask = torch.ones(count, length, dtype=torch.long, device=self.device)
        if self._cache is None:
            self._cache, self._mask = cache, new_mask
            return
        width = max(self._mask.shape[1], length)
        for old_layer, new_layer in zip(self._cache.layers, cache.layers, strict=True):
            old_layer.keys = torch.cat([_pad_left(old_layer.keys, width), _pad_left(new_layer.keys, width)])
            old_layer.values = torch.cat([_pad_left(old_layer.values, width), _pad_left(new_layer.values, width)])
        self._mask = torch.cat([_pad_mask(self._mask, width), _pad_mask(new_mask, width)])

    def _step(self) -> None:
        import torch

        for row in [r for r in self._rows if r.job.stop.is_set()]:
            row.completion.end("cancelled")
            self._retire(row)
        self._compact()
        rows = self._rows
        if not rows:
            return
        width = self._mask.shape[1]
        mask = torch.cat([self._mask, torch.ones(len(rows), 1, dtype=torch.long, device=self.device)], dim=1)
        with torch.inference_mode():
            output = self.model(
                input_ids=torch.tensor([[r.ids[-1]] for r in rows], device=self.device),
                attention_mask=mask,
                position_ids=torch.tensor([[r.length] for r in rows], device=self.device),
                cache_position=torch.tensor([width], device=self.device),
                past_key_values=self._cache,
                use_cache=True,
            )
        self._mask = mask
        self.steps += 1
        self.batch_rows.append(len(rows))
        for index, row in enumerate(rows):
            row.length += 1
            self._take(row, output.logits[index, -1, :])
        self._compact()

    def _take(self, row: Row, logits: Any) -> None:
        """Sample the row's next token from ``logits``; end the row when it is done."""
        import torch

        request = row.job.request
        if len(row.ids) < request.min_tokens:
            logits = logits.clone()
            logits[list(self.end_tokens)] = -float("inf")
        token = sample_token(logits, request.temperature, request.top_p, row.generator)
        if token in self.end_tokens:
            row.completion.end("stop")
            self._retire(row)
            return
        logprob = float(torch.log_softmax(logits.float(), dim=-1)[token]) if request.logprobs else None
        row.ids.append(token)
        if not row.completion.add(row.detokenizer.add(token), logprob):
            self._retire(row)

    def _retire(self, row: Row) -> None:
        if row.done:
            return
        row.done = True
        row.job.finished += 1
        if row.job.finished == len(row.job.rows):
            self._finish_job(row.job)

    def _compact(self) -> None:
        """Drop finished rows from the cache and the padding columns no live row needs."""
        keep = [i for i, r in enumerate(self._rows) if not r.done]
        if len(keep) == len(self._rows):
            return
        self._rows = [self._rows[i] for i in keep]
        if not keep:
            self._cache, self._mask = None, None
            return
        self._cache.batch_select_indices(keep)
        self._mask = self._mask[keep]
        first = int(self._mask.any(dim=0).nonzero()[0])  # columns before this are padding in every row
        if first:
            self.columns_cut += first
            for layer in self._cache.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]
            self._mask = self._mask[:, first:]

    def _finish_job(self, job: HFJob) -> None:
        choices = [row.completion.choice() for row in job.rows]  # none: cancelled before it started
        usage = Usage(
            prompt_tokens=len(job.prompt),
            completion_tokens=sum(c.completion_tokens for c in choices),
            latency_seconds=time.perf_counter() - job.started,
        )
        report(job, Result(choices=choices, usage=usage, model=self.model_id))


def _pad_left(tensor: Any, width: int) -> Any:
    import torch

    missing = width - tensor.shape[2]
    if not missing:
        return tensor
    shape = (tensor.shape[0], tensor.shape[1], missing, tensor.shape[3])
    return torch.cat([torch.zeros(shape, dtype=tensor.dtype, device=tensor.device), tensor], dim=2)


def _pad_mask(mask: Any, width: int) -> Any:
    import torch

    missing = width - mask.shape[1]
    if not missing:
        return mask
    return torch.cat([torch.zeros(mask.shape[0], missing, dtype=mask.dtype, device=mask.device), mask], dim=1)
