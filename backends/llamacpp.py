"""llama.cpp in process: the embedded CPU default (``llamacpp:smollm2`` or ``llamacpp:/path/model.gguf``).

Two engines. The default, :class:`~backends.llamacpp_engine.BatchedEngine`, decodes up to ``slots``
sequences together with continuous batching and prefix sharing. ``deterministic=True`` (or ``slots=1``) is
the one-sequence engine below, whose results do not depend on what else runs.

Why our own decoding loops instead of ``create_completion``: llama-cpp-python only returns logprobs with
``logits_all=True``, which computes logits for every prompt position and is about 10x slower. Both engines
read the logits row a token was sampled from, which gives its log-probability at full decoding speed. The
one-sequence engine drives ``Llama.generate``; its KV cache keeps the last sequence, so a request that shares
a prompt prefix with it reuses the whole cached blocks of that prefix (see ``_load_prompt``). Either way the
reused part is reported as ``usage.cached_prompt_tokens``.

Logprobs are those of the model's own distribution (before temperature, top_p or a grammar),
the same convention vLLM and OpenAI servers use.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
import time
import weakref
from typing import Any

import numpy as np

from thoughtgraph.backends.base import Backend
from thoughtgraph.backends.coalesce import RequestCoalescer, pending_requests, resolve
from thoughtgraph.backends.decoding import CompletionText
from thoughtgraph.backends.errors import BackendConfigError, InvalidRequestError
from thoughtgraph.backends.grammar import constraint_to_gbnf
from thoughtgraph.backends.llamacpp_engine import (
    BatchedEngine,
    Job,
    common_prefix,
    end_of_generation_tokens,
    token_logprob,
)
from thoughtgraph.backends.presets import resolve_gguf
from thoughtgraph.backends.types import Capabilities, Choice, Constraint, Request, Result, Usage

DEFAULT_SLOTS = 8
"""Sequences decoded together by default; ``slots=1`` (or ``deterministic=1``) is the one-sequence engine."""

OPTIONS = {"threads": (1, 256), "slots": (1, 64), "deterministic": (0, 1)}
"""Spec options after ``#`` (``llamacpp:smollm2#slots=8&threads=2``) and the least and largest value each
takes. Each slot holds its own KV cache (about 90 MB for SmolLM2 at its context size), so 64 slots already
take about 6 GB; more threads than cores only slow llama.cpp down."""
WHY_AT_MOST = {"threads": "more threads than cores only slow llama.cpp down",
               "slots": "each slot holds its own KV cache, about 90 MB for SmolLM2",
               "deterministic": "it is 0 or 1"}  # fmt: skip


def split_options(target: str) -> tuple[str, dict[str, int]]:
    """``smollm2#threads=1&slots=4`` -> ("smollm2", {"threads": 1, "slots": 4}): options after ``#`` as for
    ``hf:DIR#adapter=PATH``, joined by ``&``."""
    base, _, fragment = target.partition("#")
    options: dict[str, int] = {}
    for item in filter(None, fragment.split("&")):
        key, _, value = item.partition("=")
        if key not in OPTIONS or not (value.isascii() and value.isdigit() and len(value) <= 6):
            raise BackendConfigError(
                f"llamacpp spec option {item[:80]!r} is not understood; the options are threads=N (1-256), "
                "slots=N (1-64) and deterministic=0|1, as in MODEL#slots=8&threads=2"
            )
        low, high = OPTIONS[key]
        if not low <= int(value) <= high:
            raise BackendConfigError(
                f"llamacpp spec option {key}={value} is out of range: {key} takes {low} to {high} ({WHY_AT_MOST[key]})"
            )
        options[key] = int(value)
    return base, options


def free_cores(sample_seconds: float = 0.1) -> int:
    """Threads for llama.cpp: the cores this process may use that are idle right now (measured from /proc/stat
    over ``sample_seconds``), at least 1. llama.cpp's threads spin while they wait, so on an oversubscribed
    machine more threads than free cores are much slower than fewer (seen: 3.1 tokens/s with 2 threads against
    16.8 with 1 while another process was busy). Without /proc/stat: every core this process may use."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        before = _cpu_times()
        time.sleep(sample_seconds)
        after = _cpu_times()
    except (OSError, ValueError):
        return available
    total = sum(after) - sum(before)
    idle = (after[3] + after[4]) - (before[3] + before[4])  # idle + iowait
    if total <= 0:
        return available
    idle_cores = idle / total * (os.cpu_count() or available)
    return max(1, min(available, round(idle_cores)))


def _cpu_times() -> list[int]:
    with open("/proc/stat", encoding="ascii") as stat:
        return [int(x) for x in stat.readline().split()[1:8]]


class LlamaCppBackend(Backend):
    def __init__(
        self,
        target: str = "smollm2",
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        slots: int | None = None,
        deterministic: bool | None = None,
        chunk_tokens: int = 64,
        max_batch: int = 32,
        prefix_block_tokens: int = 32,
        **options: Any,
    ) -> None:
        target, fragment_options = split_options(target)
        n_threads = n_threads or fragment_options.get("threads")
        slots = slots or fragment_options.get("slots", DEFAULT_SLOTS)
        deterministic = bool(fragment_options.get("deterministic", 0)) if deterministic is None else deterministic
        self.deterministic = deterministic or slots == 1
        self.slots = 1 if self.deterministic else slots
        path = resolve_gguf(target)
        from llama_cpp import Llama, llama_chat_format

        threads = n_threads or free_cores()
        try:
            self._llm = Llama(  # the one-sequence engine; with the batched one, only its tokenizer is used
                model_path=str(path),
                n_ctx=n_ctx if self.deterministic else 64,
                n_threads=threads,
                logits_all=False,
                verbose=False,
            )
        except ValueError as error:
            raise BackendConfigError(f"llama.cpp could not load {path}: {error}") from None
        super().__init__(f"llamacpp:{target}", model_id=f"llamacpp:{path.name}:{path.stat().st_size}", **options)
        self.model_path = path
        self.n_ctx = n_ctx
        self.prefix_block_tokens = prefix_block_tokens
        self._n_vocab = self._llm.n_vocab()
        template = self._llm.metadata.get("tokenizer.chat_template")
        self._chat_formatter = None
        if template:
            model = self._llm._model
            eos, bos = self._llm.token_eos(), self._llm.token_bos()
            self._chat_formatter = llama_chat_format.Jinja2ChatFormatter(
                template=template,
                eos_token=model.token_get_text(eos) if eos != -1 else "",
                bos_token=model.token_get_text(bos) if bos != -1 else "",
                add_generation_prompt=True,
            )
        self.capabilities = Capabilities(
            chat=self._chat_formatter is not None,
            raw_prompt=True,
            logprobs=True,
            constraints=frozenset({"json_schema", "regex", "choice"}),
            batching=not self.deterministic,
            continue_message=self._chat_formatter is not None,
        )
        self._grammars: dict[str, Any] = {}
        self._end_tokens: np.ndarray | None = None
        self._coalescer = RequestCoalescer(self._run_batch, max_batch=max_batch, cancellable=True)
        self.engine: BatchedEngine | None = None
        if not self.deterministic:
            self.engine = BatchedEngine(
                self._llm, slots=slots, n_ctx=n_ctx, threads=threads, model_id=self.model_id, chunk_tokens=chunk_tokens
            )
            # the engine thread keeps the engine alive: a backend dropped without close() still frees it
            weakref.finalize(self, self.engine.close)

    async def _generate(self, requests: list[Request]) -> list[Result]:
        if self.engine is None:
            return await self._coalescer.submit(requests)
        prompts = [self._checked_prompt(r) for r in requests]  # refuse before anything is owed
        loop = asyncio.get_running_loop()
        entries = pending_requests(loop, requests)
        for entry, prompt in zip(entries, prompts, strict=True):
            job = Job(
                request=entry.request, prompt=prompt, grammar=self._grammar(entry.request.constraint), stop=entry.stop,
                on_done=lambda outcome, e=entry: loop.call_soon_threadsafe(resolve, e, outcome),
            )  # fmt: skip
            self.engine.submit(job)
        return list(await asyncio.gather(*(e.answer for e in entries)))

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
        self._coalescer.close()
        self._llm.close()

    # -- engine thread ----------------------------------------------------------------------------

    def prompt_tokens(self, request: Request) -> list[int]:
        """The exact token ids the model sees for ``request`` (chat template applied)."""
        if request.messages is not None:
            assert self._chat_formatter is not None
            messages = request.messages[:-1] if request.continue_final_message else request.messages
            rendered = self._chat_formatter(messages=[{"role": m.role, "content": m.content} for m in messages])
            ids = self._llm.tokenize(rendered.prompt.encode(), add_bos=False, special=True)
            if request.continue_final_message:  # the reply so far, left open after the assistant header
                ids += self._llm.tokenize(request.messages[-1].content.encode(), add_bos=False, special=False)
            return ids
        assert request.prompt is not None
        return self._llm.tokenize(request.prompt.encode(), add_bos=True, special=False)

    def token_pieces(self, text: str) -> list[str]:
        ids = self._llm.tokenize(text.encode(), add_bos=False, special=False)
        return [self._llm.detokenize([t]).decode("utf-8", errors="replace") for t in ids]

    def count_prompt_tokens(self, request: Request) -> int:
        return len(self.prompt_tokens(request))

    def _run_batch(self, requests: list[Request], stops: list[threading.Event]) -> list[Result]:
        """Run one request at a time, each time choosing the one whose prompt shares the most with
        the KV cache: the engine keeps one sequence, so interleaved problems would evict each other.
        A request whose ``stops`` event is set (its caller gave up) stops at its next token."""
        prompts = [self.prompt_tokens(r) for r in requests]
        results: dict[int, Result] = {}
        while len(results) < len(requests):
            cached = self._llm._input_ids[: self._llm.n_tokens].tolist()
            pending = [i for i in range(len(requests)) if i not in results]
            best = max(pending, key=lambda i: (common_prefix(cached, prompts[i]), -i))
            results[best] = self._run(requests[best], prompts[best], stops[best])
        return [results[i] for i in range(len(requests))]

    def _checked_prompt(self, request: Request) -> list[int]:
        prompt = self.prompt_tokens(request)
        if len(prompt) >= self.n_ctx:
            raise InvalidRequestError(
                f"the prompt has {len(prompt)} tokens, more than the context window of {self.n_ctx}; "
                "shorten it or create the backend with a larger n_ctx"
            )
        return prompt

    def _run(self, request: Request, prompt: list[int], stop: threading.Event) -> Result:
        started = time.perf_counter()
        self._checked_prompt(request)
        grammar = self._grammar(request.constraint)
        choices, reused = [], 0
        for index in range(request.n):
            if stop.is_set():
                break
            self._llm.set_seed(request.seed + index if request.seed is not None else random.randrange(2**31))
            choice, reused_now = self._sample(prompt, request, grammar, stop)
            choices.append(choice)
            if index == 0:
                reused = reused_now
        return Result(
            choices=choices,
            usage=Usage(
                prompt_tokens=len(prompt),
                completion_tokens=sum(c.completion_tokens for c in choices),
                latency_seconds=time.perf_counter() - started,
                cached_prompt_tokens=reused,
            ),
            model=self.model_id,
        )

    def _load_prompt(self, prompt: list[int]) -> int:
        """Bring the KV cache to exactly ``prompt``, reusing whole cached blocks; return tokens reused.

        Results must not depend on what ran before. llama.cpp's numbers for a token depend on the
        batch it was computed in, so a prompt is always evaluated in blocks aligned to absolute
        positions (only whole blocks are reused), and its last token alone. Then ``generate``
        finds the prompt fully cached and samples at once.
        """
        llm, block = self._llm, self.prefix_block_tokens
        common = common_prefix(llm._input_ids[: llm.n_tokens].tolist(), prompt[:-1])
        reused = common - common % block
        llm.n_tokens = reused
        for start in range(reused, len(prompt) - 1, block):
            llm.eval(prompt[start : min(start - start % block + block, len(prompt) - 1)])
        llm.eval(prompt[-1:])
        return reused

    def _sample(self, prompt: list[int], request: Request, grammar: Any, stop: threading.Event) -> tuple[Choice, int]:
        import llama_cpp

        llm = self._llm
        reused = self._load_prompt(prompt)
        vocab = llm._model.vocab
        completion = CompletionText(request, budget=min(request.max_tokens, self.n_ctx - len(prompt)))
        for token in llm.generate(
            prompt,
            top_k=0,
            top_p=request.top_p,
            min_p=0.0,
            temp=request.temperature,
            repeat_penalty=1.0,
            grammar=grammar,
            logits_processor=self._end_mask(completion.pieces, request.min_tokens),
        ):
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                completion.end("stop")
                break
            logprob = self._last_logprob(token) if request.logprobs else None
            if not completion.add(llm.detokenize([token]), logprob):
                break
            if stop.is_set():
                completion.end("cancelled")
                break
        return completion.choice(), reused

    def _end_mask(self, pieces: list[bytes], min_tokens: int) -> Any:
        """A logits processor that forbids end-of-generation tokens until ``min_tokens`` are generated."""
        if not min_tokens:
            return None
        import llama_cpp

        if self._end_tokens is None:
            self._end_tokens = end_of_generation_tokens(self._llm._model.vocab, self._n_vocab)
        end_tokens = self._end_tokens

        def forbid_end(_input_ids: Any, scores: Any) -> Any:
            if len(pieces) < min_tokens:
                scores[end_tokens] = -np.inf
            return scores

        return llama_cpp.LogitsProcessorList([forbid_end])

    def _last_logprob(self, token: int) -> float:
        """log p(token) from the logits row the token was just sampled from."""
        return token_logprob(self._llm._ctx.get_logits_ith(-1), self._n_vocab, token)

    def _grammar(self, constraint: Constraint | None) -> Any:
        if constraint is None:
            return None
        from llama_cpp import LlamaGrammar

        key = json.dumps([constraint.kind, constraint.json_schema, constraint.pattern, constraint.choices])
        if key not in self._grammars:
            if constraint.kind == "json_schema":
                grammar = LlamaGrammar.from_json_schema(json.dumps(constraint.json_schema), verbose=False)
            else:
                grammar = LlamaGrammar.from_string(constraint_to_gbnf(constraint), verbose=False)
            self._grammars[key] = grammar
        return self._grammars[key]
