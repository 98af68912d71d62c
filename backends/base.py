"""The backend protocol and the machinery every backend shares.

A backend implements one method, ``_generate(requests) -> results``. The base class wraps it
with, in order: capability checks (fail at once, before any engine work), the persistent
request cache, retries with backoff for transient failures, and the usage ledger. In-process
engines route ``_generate`` through a :class:`RequestCoalescer` so concurrent callers share
one engine thread and, where the engine batches, one forward pass.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

from thoughtgraph.backends.cache import RequestCache
from thoughtgraph.backends.decoding import cut
from thoughtgraph.backends.errors import CapabilityError, InvalidRequestError
from thoughtgraph.backends.ledger import record_usage
from thoughtgraph.backends.retry import RetryPolicy
from thoughtgraph.backends.types import Capabilities, ConstraintKind, Request, Result


class Backend(ABC):
    """Answers batches of :class:`Request` asynchronously. Use ``create_backend(spec)`` to get one."""

    capabilities: Capabilities
    requests_are_independent_calls: bool = False
    """True for remote backends, where each request is its own HTTP call and is retried alone."""

    def __init__(
        self,
        spec: str,
        model_id: str,
        *,
        retry: RetryPolicy | None = None,
        cache: RequestCache | None = None,
    ) -> None:
        self.spec = spec
        self.model_id = model_id
        self.retry = retry or RetryPolicy()
        self.cache = cache
        self.engine_calls = 0
        """Requests that reached the engine (cache hits excluded): what the cache saves."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec}>"

    # -- public API -----------------------------------------------------------------------------

    def require(self, *, logprobs: bool = False, constraints: Iterable[ConstraintKind] = ()) -> None:
        """Refuse up front when a method needs what this backend lacks (called at method construction)."""
        if logprobs and not self.capabilities.logprobs:
            raise CapabilityError(
                f"backend {self.spec!r} cannot return token logprobs, which this method needs; "
                "use llamacpp, hf, vllm or an openai server that returns logprobs"
            )
        missing = set(constraints) - set(self.capabilities.constraints)
        if missing:
            raise CapabilityError(
                f"backend {self.spec!r} cannot constrain output by {', '.join(sorted(missing))}; "
                f"it supports {sorted(self.capabilities.constraints) or 'no constraints'}"
            )

    def check(self, request: Request) -> None:
        """Raise a clear error if this backend cannot serve ``request``."""
        if not isinstance(request, Request):
            raise InvalidRequestError(f"expected a backends.Request, got {type(request).__name__}")
        if request.messages is not None and not self.capabilities.chat:
            raise CapabilityError(f"backend {self.spec!r} takes raw prompts only, not chat messages")
        if request.continue_final_message and not self.capabilities.continue_message:
            raise CapabilityError(f"backend {self.spec!r} cannot continue an assistant message in place")
        if request.prompt is not None and not self.capabilities.raw_prompt:
            raise CapabilityError(f"backend {self.spec!r} takes chat messages only, not a raw prompt")
        self.require(
            logprobs=request.logprobs,
            constraints=[request.constraint.kind] if request.constraint else [],
        )

    async def generate(self, requests: Sequence[Request]) -> list[Result]:
        """Answer every request; results come back in the order of ``requests``."""
        requests = list(requests)
        for request in requests:
            self.check(request)
        results: list[Result | None] = [
            self.cache.get(self.model_id, r) if self.cache is not None else None for r in requests
        ]
        missing = [i for i, result in enumerate(results) if result is None]
        if missing:
            fresh = await self._call_engine([requests[i] for i in missing])
            for i, result in zip(missing, fresh, strict=True):
                if requests[i].stops_on_text:  # for engines that cannot stop on a pattern or a repeat
                    result.choices = [cut(choice, requests[i]) for choice in result.choices]
                results[i] = result
                if self.cache is not None:
                    self.cache.put(self.model_id, requests[i], result)
        for result in results:
            assert result is not None
            record_usage(result.usage)
        return results  # type: ignore[return-value]

    def count_prompt_tokens(self, request: Request) -> int:
        """Prompt tokens of ``request``, for budget reservations. This default is an estimate (about
        three characters per token, plus a few per chat message); backends with a tokenizer count exactly."""
        if request.prompt is not None:
            return -(-len(request.prompt) // 3)
        return sum(4 + -(-len(m.content) // 3) for m in request.messages or ())

    def token_pieces(self, text: str) -> list[str] | None:
        """``text`` as the engine's tokens (the strings a Choice's ``tokens`` holds), or None without a
        tokenizer here (remote servers)."""
        return None

    async def generate_one(self, request: Request) -> Result:
        return (await self.generate([request]))[0]

    def generate_sync(self, requests: Sequence[Request]) -> list[Result]:
        """Blocking convenience for scripts; inside async code await :meth:`generate` instead."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.generate(requests))
        raise RuntimeError("generate_sync() was called inside a running event loop; await generate()")

    def close(self) -> None:  # noqa: B027 - a no-op is right for backends that hold nothing
        """Release the engine (threads, server connections, model memory)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- for implementations --------------------------------------------------------------------

    @abstractmethod
    async def _generate(self, requests: list[Request]) -> list[Result]:
        """Run ``requests`` on the engine. Raise TransientBackendError for failures worth retrying."""

    async def _call_engine(self, requests: list[Request]) -> list[Result]:
        self.engine_calls += len(requests)
        if not self.requests_are_independent_calls:
            return await self.retry.run(lambda: self._generate(requests), what=f"backend {self.spec!r}")
        per_request = await asyncio.gather(
            *(self.retry.run(lambda r=r: self._generate([r]), what=f"backend {self.spec!r}") for r in requests)
        )
        return [results[0] for results in per_request]
