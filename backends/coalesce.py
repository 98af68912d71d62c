"""Request coalescing: concurrent callers reach a blocking engine as one batch.

In-process engines (llama.cpp, transformers, vLLM's offline ``LLM``) are not safe to call from
several threads, and batching engines are much faster when handed many sequences at once. The
coalescer owns one worker thread. Requests that arrive while the engine is busy, or within a
short window of each other while it is idle, are handed to the engine together (up to
``max_batch``); each caller gets back exactly its own results.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from backends.types import Request, Result

RunBatch = Callable[[list[Request]], list[Result]]


class RequestCoalescer:
    def __init__(self, run_batch: RunBatch, *, max_batch: int, window_seconds: float = 0.002) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._run_batch = run_batch
        self.max_batch = max_batch
        self.window_seconds = window_seconds
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[tuple[Request, asyncio.Future[Result]]] = []
        self._worker: asyncio.Task[None] | None = None
        self.batch_sizes: list[int] = []
        """Size of every batch handed to the engine, for benchmarks and tests."""

    async def submit(self, requests: list[Request]) -> list[Result]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (e.g. a second asyncio.run): start afresh
            self._loop, self._pending, self._worker = loop, [], None
        futures = [loop.create_future() for _ in requests]
        self._pending.extend(zip(requests, futures, strict=True))
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain())
        return list(await asyncio.gather(*futures))

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            if len(self._pending) < self.max_batch and self.window_seconds > 0:
                await asyncio.sleep(self.window_seconds)  # let concurrent callers join this batch
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            live = [(req, fut) for req, fut in batch if not fut.done()]
            if not live:
                continue
            self.batch_sizes.append(len(live))
            try:
                results = await loop.run_in_executor(self._executor, self._run_batch, [r for r, _ in live])
            except Exception as error:  # the engine failed: every caller of this batch hears why
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(error)
                continue
            for (_, fut), result in zip(live, results, strict=True):
                if not fut.done():
                    fut.set_result(result)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
