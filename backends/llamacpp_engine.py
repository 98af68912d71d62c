"""Many sequences in one llama.cpp context: continuous batching with prefix sharing.

One context holds ``slots`` KV streams (llama.cpp sequences, one stream each, ``n_ctx`` cells apiece). An
engine thread builds every ``llama_decode`` call from

- one token for each sequence that is generating (it samples its next token from that row's logits), then
- chunks of prompts still being evaluated, up to ``chunk_tokens`` in all, so a newcomer's long prompt does
  not stall the sequences already decoding.

A request's ``n`` samples are ``n`` sequences. A sequence joins at the next decode call when a stream is free
and leaves when it finishes; its stream keeps the KV of what it evaluated until another sequence needs it.

Stream ids: llama.cpp decodes a call over separate streams in sub-batches of consecutive, increasing sequence
ids (``split_equal`` with ``sequential``), so rows go in id order and a newcomer takes the lowest free stream:
running sequences keep adjacent ids and share one sub-batch. (With the least recently used stream instead, ids
scattered and an 8-row call cost about what 8 one-row calls do.)

Prefix sharing: a newcomer takes the longest common token prefix with any stream, idle or running. When that
stream is not the newcomer's, it is copied whole (``llama_memory_seq_cp``; llama.cpp copies only whole streams
between streams) into the newcomer's stream, unless that stream's own prefix is nearly as long; then cut after
the shared part.
The shared count is reported as ``usage.cached_prompt_tokens``. A prompt whose prefix another sequence is
still evaluating (the n samples of one request, or BoT's trees on one question) waits for it rather than
computing it twice. Separate streams, not one unified cache: with a unified cache every row attends over the
cells of all sequences (masked), which made an 8-sequence decode call 1.6x slower at 400 tokens each here.

Each sequence has its own sampler chain (temperature, top_p, seed, grammar, and a mask of end-of-generation
tokens until ``min_tokens``) built like ``Llama.generate``'s, its own stop strings and logprobs.

Determinism: llama.cpp's numbers for a token depend on what else is in the decode call, so a seeded request
here can give different text alone and in a busy batch (only where two tokens are nearly tied). Backends
created with ``deterministic=True`` (``llamacpp:MODEL#deterministic=1``) or ``slots=1`` run this engine with
``deterministic=True``: one stream, prompts evaluated in blocks of ``block_tokens`` aligned to absolute
positions and the last prompt token alone, and only whole cached blocks reused. A token's numbers then depend
only on the tokens before it, so results do not depend on what ran before or beside.
"""

from __future__ import annotations

import ctypes
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thoughtgraph.backends.decoding import CompletionText
from thoughtgraph.backends.engine_thread import EngineJob, EngineThread, report
from thoughtgraph.backends.errors import BackendError
from thoughtgraph.backends.types import Result, Usage

SHARE_AT_LEAST = 16
"""Fewer shared tokens than this are not worth a wait or a stream copy: they are evaluated again."""


@dataclass(kw_only=True)
class Job(EngineJob):
    """One request: its grammar (or None), its sequences (one per sample) and the prompt tokens shared from
    the cache."""

    grammar: Any = None
    sequences: list[Sequence] = field(default_factory=list)
    cached_prompt_tokens: int = 0


@dataclass(eq=False)
class Sequence:
    job: Job
    index: int
    completion: CompletionText
    seq_id: int = -1
    kv_tokens: list[int] = field(default_factory=list)
    """Tokens whose KV is in this sequence's cells, in position order."""
    todo: list[int] = field(default_factory=list)
    """Prompt tokens still to evaluate."""
    next_token: int | None = None
    """Sampled, not yet evaluated."""
    sampler: Any = None


@dataclass(eq=False)
class Stream:
    """One llama.cpp sequence id: the tokens whose KV it holds, and the sequence using it (None when idle)."""

    seq_id: int
    tokens: list[int] = field(default_factory=list)
    owner: Sequence | None = None


class BatchedEngine(EngineThread):
    thread_name = "llama.cpp"

    def __init__(
        self,
        llm: Any,
        *,
        slots: int,
        n_ctx: int,
        threads: int,
        model_id: str,
        chunk_tokens: int = 64,
        deterministic: bool = False,
        block_tokens: int = 32,
    ) -> None:
        import llama_cpp
        from llama_cpp import _internals

        self._llm = llm
        self.model_id = model_id
        self.slots = slots
        self.n_ctx = n_ctx
        self.chunk_tokens = chunk_tokens
        if deterministic and (slots != 1 or not 0 < block_tokens <= chunk_tokens):
            raise ValueError("the deterministic engine runs one slot, with 0 < block_tokens <= chunk_tokens")
        self.deterministic = deterministic
        self.block_tokens = block_tokens
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx * slots
        params.n_batch = params.n_ubatch = chunk_tokens + slots
        params.n_seq_max = slots
        params.kv_unified = False
        params.n_threads = params.n_threads_batch = threads
        self._context = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self._memory = self._context.memory
        self._batch = _internals.LlamaBatch(n_tokens=chunk_tokens + slots, embd=0, n_seq_max=1, verbose=False)
        self._vocab = llm._model.vocab
        self._n_vocab = llm.n_vocab()
        self._end_tokens: np.ndarray | None = None
        self._pieces: dict[int, bytes] = {}
        """Each token's bytes, detokenized once (a token's piece does not depend on its neighbours)."""
        self._streams = [Stream(i) for i in range(slots)]
        self._waiting: list[Sequence] = []
        self._running: list[Sequence] = []
        self.decode_calls = 0
        self.batch_rows: list[int] = []
        """Sequences in each decode call (generating or evaluating prompt), for benchmarks and tests."""
        self.stream_copies = 0
        self._start_thread()

    # -- engine thread ----------------------------------------------------------------------------

    def _busy(self) -> bool:
        return bool(self._waiting or self._running)

    def _jobs_in_hand(self) -> list[Job]:
        return [s.job for s in self._waiting + self._running]

    def _release(self) -> None:
        self._batch.close()
        self._context.close()

    def _open(self, job: Job) -> None:
        budget = min(job.request.max_tokens, self.n_ctx - len(job.prompt))
        for index in range(job.request.n):
            sequence = Sequence(job, index, CompletionText(job.request, budget))
            job.sequences.append(sequence)
            self._waiting.append(sequence)

    def _admit(self) -> None:
        """Give waiting sequences a stream and a starting prefix, oldest first."""
        for sequence in list(self._waiting):
            if sequence.job.stop.is_set():
                self._waiting.remove(sequence)
                sequence.completion.end("cancelled")
                self._finish(sequence)
                continue
            if len(self._running) >= self.slots:
                return
            prompt = sequence.job.prompt
            limit = len(prompt) - 1  # the last prompt token is always evaluated: its logits are needed
            shared, source = max(((min(common_prefix(s.tokens, prompt), limit), s) for s in self._streams),
                                 key=lambda pair: (pair[0], pair[1].owner is None))  # fmt: skip
            pending = max((common_prefix(s.job.prompt, prompt) for s in self._running if s.todo), default=0)
            if min(pending, limit) >= shared + SHARE_AT_LEAST:
                continue  # another sequence is evaluating more of this prompt: wait and copy it
            if self.deterministic:
                shared -= shared % self.block_tokens  # whole blocks only, as they were evaluated
            self._start(sequence, shared if shared >= SHARE_AT_LEAST else 0, source)

    def _start(self, sequence: Sequence, shared: int, source: Stream) -> None:
        import llama_cpp

        prompt = sequence.job.prompt
        # the lowest free stream id, so that running sequences keep adjacent ids and share sub-batches (_step)
        stream = min((s for s in self._streams if s.owner is None), key=lambda s: s.seq_id)
        if shared and source is not stream:  # never in the deterministic engine: it has one stream
            own = min(common_prefix(stream.tokens, prompt), shared)
            if own + SHARE_AT_LEAST > shared:  # the stream's own prefix is nearly as long: no copy
                shared = own if own >= SHARE_AT_LEAST else 0
            else:
                llama_cpp.llama_memory_seq_cp(self._memory, source.seq_id, stream.seq_id, -1, -1)
                self.stream_copies += 1
        llama_cpp.llama_memory_seq_rm(self._memory, stream.seq_id, shared, -1)
        stream.owner, stream.tokens = sequence, prompt[:shared]
        sequence.seq_id, sequence.kv_tokens, sequence.todo = stream.seq_id, stream.tokens, prompt[shared:]
        sequence.sampler = self._sampler(sequence)
        if sequence.index == 0:
            sequence.job.cached_prompt_tokens = shared
        self._waiting.remove(sequence)
        self._running.append(sequence)

    def _step(self) -> None:
        """One decode call over every running sequence; then sample where a row has logits."""
        for sequence in [s for s in self._running if s.job.stop.is_set()]:
            sequence.completion.end("cancelled")
            self._retire(sequence)
        if not self._running:
            return
        planned, room = [], self.chunk_tokens
        for sequence in self._running:
            if sequence.next_token is not None:
                planned.append((sequence, [sequence.next_token], True))
        for sequence in self._running:
            if not sequence.todo or room <= 0:
                continue
            chunk = sequence.todo[: self._chunk_size(sequence, room)]
            room -= len(chunk)
            planned.append((sequence, chunk, False))
        # llama.cpp cuts a call over separate KV streams into sub-batches of consecutive, increasing sequence
        # ids (llama_batch_allocr::split_equal, sequential): rows out of order, or ids with gaps between them,
        # are decoded one sub-batch each, which is the cost of one row apiece
        planned.sort(key=lambda item: item[0].seq_id)
        batch, rows = self._batch.batch, []
        batch.n_tokens = 0
        for sequence, tokens, generating in planned:
            position = len(sequence.kv_tokens)
            for offset, token in enumerate(tokens):
                last = offset == len(tokens) - 1 and (generating or len(tokens) == len(sequence.todo))
                _put(batch, token, position + offset, sequence.seq_id, logits=last)
            rows.append((sequence, tokens, batch.n_tokens - 1, generating))
        self._decode(batch)
        self.decode_calls += 1
        self.batch_rows.append(len(rows))
        for sequence, tokens, row, generating in rows:
            sequence.kv_tokens.extend(tokens)
            if generating:
                sequence.next_token = None
            else:
                sequence.todo = sequence.todo[len(tokens) :]
                if sequence.todo:
                    continue  # more prompt to evaluate: no logits in this call
            self._sample(sequence, row)

    def _chunk_size(self, sequence: Sequence, room: int) -> int:
        """Prompt tokens of ``sequence`` to evaluate in this call: as many as there is room for, or, in the
        deterministic engine, up to the next block boundary and never the last prompt token with others."""
        if not self.deterministic:
            return room
        position, left = len(sequence.kv_tokens), len(sequence.todo)
        if left == 1:
            return 1
        return min(self.block_tokens - position % self.block_tokens, left - 1, room)

    def _decode(self, batch: Any) -> None:
        import llama_cpp

        status = llama_cpp.llama_decode(self._context.ctx, batch)
        if status != 0:
            raise BackendError(f"llama_decode failed with status {status} ({batch.n_tokens} tokens)")

    def _sample(self, sequence: Sequence, row: int) -> None:
        import llama_cpp

        token = llama_cpp.llama_sampler_sample(sequence.sampler.sampler, self._context.ctx, row)
        completion = sequence.completion
        if llama_cpp.llama_vocab_is_eog(self._vocab, token):
            completion.end("stop")
        else:
            logprob = self._logprob(row, token) if sequence.job.request.logprobs else None
            piece = self._pieces.get(token)
            if piece is None:
                piece = self._pieces[token] = self._llm.detokenize([token])
            if completion.add(piece, logprob):
                sequence.next_token = token
                return
        self._retire(sequence)

    def _logprob(self, row: int, token: int) -> float:
        return token_logprob(self._context.get_logits_ith(row), self._n_vocab, token)

    def _retire(self, sequence: Sequence) -> None:
        """A finished sequence leaves the batch; its stream keeps the KV for later prompts."""
        self._running.remove(sequence)
        sequence.sampler.close()
        stream = self._streams[sequence.seq_id]
        stream.owner = None
        self._finish(sequence)

    def _finish(self, sequence: Sequence) -> None:
        job = sequence.job
        job.finished += 1
        if job.finished < len(job.sequences):
            return
        choices = [s.completion.choice() for s in job.sequences]
        usage = Usage(
            prompt_tokens=len(job.prompt),
            completion_tokens=sum(c.completion_tokens for c in choices),
            latency_seconds=time.perf_counter() - job.started,
            cached_prompt_tokens=job.cached_prompt_tokens,
        )
        report(job, Result(choices=choices, usage=usage, model=self.model_id))

    def _drop_all(self) -> None:
        import llama_cpp

        for sequence in self._running:
            sequence.sampler.close()
        for stream in self._streams:  # what the failed call left in the cache is not trusted
            llama_cpp.llama_memory_seq_rm(self._memory, stream.seq_id, -1, -1)
            stream.tokens, stream.owner = [], None
        self._waiting, self._running = [], []

    # -- sampling ---------------------------------------------------------------------------------

    def _sampler(self, sequence: Sequence) -> Any:
        """The chain ``Llama.generate`` builds for the same settings (top_k 0, min_p 0, no penalties), with
        the sequence's own seed and grammar state."""
        from llama_cpp import _internals

        request = sequence.job.request
        seed = request.seed + sequence.index if request.seed is not None else random.randrange(2**31)
        sampler = _internals.LlamaSampler()
        if request.min_tokens:
            sampler.add_custom(self._end_mask(sequence.completion, request.min_tokens))
        if sequence.job.grammar is not None:
            sampler.add_grammar(self._llm._model, sequence.job.grammar)
        if request.temperature == 0.0:
            sampler.add_greedy()
        else:
            sampler.add_top_k(0)
            sampler.add_typical(1.0, 1)
            sampler.add_top_p(request.top_p, 1)
            sampler.add_min_p(0.0, 1)
            sampler.add_temp(request.temperature)
            sampler.add_dist(seed)
        return sampler

    def _end_mask(self, completion: CompletionText, min_tokens: int) -> Callable[[Any], None]:
        """Forbid end-of-generation tokens until ``min_tokens`` are generated."""
        import llama_cpp

        if self._end_tokens is None:
            self._end_tokens = end_of_generation_tokens(self._vocab, self._n_vocab)
        end_tokens = self._end_tokens

        def forbid_end(candidates: Any) -> None:
            if len(completion.pieces) >= min_tokens:
                return
            array = candidates.contents
            data = (llama_cpp.llama_token_data * array.size).from_address(ctypes.addressof(array.data.contents))
            view = np.ctypeslib.as_array(data)
            view["logit"][np.isin(view["id"], end_tokens)] = -np.inf

        return forbid_end


def end_of_generation_tokens(vocab: Any, n_vocab: int) -> np.ndarray:
    """The ids llama.cpp treats as end of generation (EOS, EOT and the like)."""
    import llama_cpp

    return np.array([t for t in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, t)], dtype=np.intc)


def token_logprob(logits_row: Any, n_vocab: int, token: int) -> float:
    """log p(token) from a llama.cpp logits row (a float pointer): the model's own distribution."""
    logits = np.ctypeslib.as_array(logits_row, shape=(n_vocab,))
    top = float(logits.max())
    return float(logits[token] - top - np.log(np.exp(logits - top).sum()))


def _put(batch: Any, token: int, position: int, seq_id: int, *, logits: bool) -> None:
    i = batch.n_tokens
    batch.token[i] = token
    batch.pos[i] = position
    batch.n_seq_id[i] = 1
    batch.seq_id[i][0] = seq_id
    batch.logits[i] = logits
    batch.n_tokens = i + 1


def common_prefix(left: list[int], right: list[int]) -> int:
    count = 0
    for a, b in zip(left, right, strict=False):
        if a != b:
            break
        count += 1
    return count
