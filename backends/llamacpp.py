"""llama.cpp in process: the embedded CPU default (``llamacpp:smollm2`` or ``llamacpp:/path/model.gguf``).

One engine, :class:`~backends.llamacpp_engine.BatchedEngine`, in its own thread: it decodes up to ``slots``
sequences together with continuous batching and prefix sharing. ``deterministic=True`` (or ``slots=1``) runs
it with one slot and position-aligned prompt blocks, so results do not depend on what else runs. This class
adapts the Backend protocol to it: chat templates, tokens, grammars, and the bridge from asyncio.

Why our own decoding loop instead of ``create_completion``: llama-cpp-python only returns logprobs with
``logits_all=True``, which computes logits for every prompt position and is about 10x slower. The engine
reads the logits row a token was sampled from, which gives its log-probability at full decoding speed.
Shared prompt prefixes are reported as ``usage.cached_prompt_tokens``.

Logprobs are those of the model's own distribution (before temperature, top_p or a grammar),
the same convention vLLM and OpenAI servers use.
"""

from __future__ import annotations

import json
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from thoughtgraph.backends.base import Backend
from thoughtgraph.backends.engine_thread import Outcome, run_jobs
from thoughtgraph.backends.errors import BackendConfigError, InvalidRequestError
from thoughtgraph.backends.grammar import constraint_to_gbnf
from thoughtgraph.backends.llamacpp_engine import (
    BatchedEngine,
    Job,
)
from thoughtgraph.backends.presets import resolve_gguf
from thoughtgraph.backends.types import Capabilities, Constraint, Request, Result

DEFAULT_SLOTS = 8
"""Sequences decoded together by default; ``slots=1`` (or ``deterministic=1``) is the deterministic engine."""

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
            self._llm = Llama(  # the model and its tokenizer; the engine makes its own context
                model_path=str(path),
                n_ctx=64,
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
        self.engine = BatchedEngine(
            self._llm, slots=self.slots, n_ctx=n_ctx, threads=threads, model_id=self.model_id,
            chunk_tokens=chunk_tokens, deterministic=self.deterministic, block_tokens=prefix_block_tokens,
        )  # fmt: skip
        # the engine thread keeps the engine alive: a backend dropped without close() still frees it
        weakref.finalize(self, self.engine.close)

    async def _generate(self, requests: list[Request]) -> list[Result]:
        def make_job(request: Request, stop: threading.Event, on_done: Callable[[Outcome], None]) -> Job:
            prompt = self._checked_prompt(request)  # refused here, before anything is owed
            return Job(request=request, prompt=prompt, grammar=self._grammar(request.constraint), stop=stop,
                       on_done=on_done)  # fmt: skip

        return await run_jobs(self.engine, requests, make_job)

    def close(self) -> None:
        self.engine.close()
        self._llm.close()

    # -- prompts and grammars -----------------------------------------------------------------------

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

    def _checked_prompt(self, request: Request) -> list[int]:
        prompt = self.prompt_tokens(request)
        if len(prompt) >= self.n_ctx:
            raise InvalidRequestError(
                f"the prompt has {len(prompt)} tokens, more than the context window of {self.n_ctx}; "
                "shorten it or create the backend with a larger n_ctx"
            )
        return prompt

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
