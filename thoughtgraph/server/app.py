"""The FastAPI app behind ``thoughtgraph serve``: ``/v1/models``, ``/v1/chat/completions`` (plain and
server-sent events) and ``/v1/traces/{id}`` (the run's thought graph as JSON or HTML).

Every request runs its method on the one shared backend, so requests from all clients reach the
engine together (the engine batches or queues them). A client that disconnects cancels its run: the
budget and the engine's work stop with it. Traces of the last ``trace_limit`` runs stay in memory; a
trace is read by its id (a random UUID, 122 random bits), and the listing of all traces is off unless the server is
started with ``list_traces`` (it would show every client's problems to anyone holding the key).

What a request may ask for is bounded by ``ServeLimits`` (``thoughtgraph.server.limits``): sizes, budgets,
body size and nesting, runs in flight. SECURITY.md has the threat model.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from thoughtgraph.agents.runtime import Budget
from thoughtgraph.backends import Backend
from thoughtgraph.backends.errors import BackendError
from thoughtgraph.reasoning.api import run_method, thoughts_then_result
from thoughtgraph.reasoning.graph import ThoughtNode
from thoughtgraph.reasoning.graph_html import CONTENT_SECURITY_POLICY
from thoughtgraph.reasoning.methods import METHODS
from thoughtgraph.reasoning.solution import Solution
from thoughtgraph.server.limits import ServeLimits
from thoughtgraph.server.protocol import RequestError, RunRequest, cut_at_stop, openai_usage, parse_request

DISCONNECT_POLL_SECONDS = 0.25


class RunFailed(Exception):
    """The backend failed mid-run; ``usage`` is what the run had spent."""

    def __init__(self, error: Exception, usage: dict[str, Any]) -> None:
        super().__init__(str(error))
        self.error, self.usage = error, usage


def error_body(message: str, kind: str, *, param: str | None = None, code: str | None = None, **extra: Any) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code, **extra}}


class Guard:
    """API key and declared body size, checked before a request reaches the app; ``nosniff`` on every
    response. Plain ASGI (not Starlette's BaseHTTPMiddleware, which hides client disconnects from the
    handlers)."""

    def __init__(self, app: Any, api_key: str | None, max_body_bytes: int) -> None:
        self.app, self.api_key, self.max_body_bytes = app, api_key, max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-content-type-options", b"nosniff")]
            await send(message)

        return await self._checked(scope, receive, send_with_headers)

    async def _checked(self, scope: dict, receive: Any, send: Any) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = None
        if self.api_key is not None:
            given = headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
                body = error_body("missing or wrong API key (Authorization: Bearer ...)", "authentication_error",
                                  code="invalid_api_key")  # fmt: skip
                refusal = JSONResponse(body, status_code=401)
        declared = headers.get("content-length")
        oversized = declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes)
        if refusal is None and oversized:
            body = error_body(f"the request body is over {self.max_body_bytes:,} bytes", "invalid_request_error",
                              code="request_too_large")  # fmt: skip
            refusal = JSONResponse(body, status_code=413)
        if refusal is not None:
            return await refusal(scope, receive, send)
        return await self.app(scope, receive, send)


class RunSlots:
    """Runs in flight, at most ``limit``. A slot is released once (by the run's end, or, for a stream whose
    client left before it started, after ``grace`` seconds)."""

    def __init__(self, limit: int, grace: float) -> None:
        self.limit, self.grace, self.taken = limit, grace, 0

    def take(self) -> RunSlot | None:
        if self.taken >= self.limit:
            return None
        self.taken += 1
        return RunSlot(self)


class RunSlot:
    def __init__(self, slots: RunSlots) -> None:
        self.slots, self.started, self.released = slots, False, False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.slots.taken -= 1

    def release_unless_started(self) -> None:
        if not self.started:
            self.release()


class Traces:
    """The last ``limit`` runs by trace id (oldest dropped first)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.runs = limit, OrderedDict[str, tuple[RunRequest, Solution]]()

    def add(self, trace_id: str, request: RunRequest, solution: Solution) -> None:
        self.runs[trace_id] = (request, solution)
        while len(self.runs) > self.limit:
            self.runs.popitem(last=False)


def json_depth(value: Any) -> int:
    """How deeply arrays and objects nest in a parsed JSON value (iterative: no recursion limit to hit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


async def read_body(request: Request, limits: ServeLimits) -> bytes:
    """The request body, read chunk by chunk: refused with 413 as soon as it passes the size limit (a chunked
    body is never read whole first), and with 408 when the client stalls between chunks."""
    body = bytearray()
    chunks = request.stream().__aiter__()
    while True:
        try:
            async with asyncio.timeout(limits.header_timeout_seconds):
                chunk = await chunks.__anext__()
        except StopAsyncIteration:
            return bytes(body)
        except TimeoutError:
            raise RequestError(f"the request body stalled for {limits.header_timeout_seconds} s", status=408) from None
        body += chunk
        if len(body) > limits.max_body_bytes:
            raise RequestError(f"the request body is over {limits.max_body_bytes:,} bytes", status=413,
                               code="request_too_large")  # fmt: skip


def parse_json(body: bytes, limits: ServeLimits) -> Any:
    try:
        payload = json.loads(body)
    except RecursionError:
        raise RequestError(f"the request body nests deeper than {limits.max_json_depth} levels") from None
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError, and integers over Python's digit limit
        raise RequestError(f"the request body is not JSON: {str(error)[:200]}") from None
    if json_depth(payload) > limits.max_json_depth:
        raise RequestError(f"the request body nests deeper than {limits.max_json_depth} levels")
    return payload


def create_app(
    backend: Backend,
    *,
    api_key: str | None = None,
    limits: ServeLimits | None = None,
    server_options: dict[str, dict[str, Any]] | None = None,
    trace_limit: int = 1000,
    list_traces: bool = False,
    **limit_overrides: Any,
) -> FastAPI:
    """The app serving every method on ``backend``; with ``api_key``, requests need ``Authorization:
    Bearer <key>``. ``limits`` (or single ``ServeLimits`` fields as keywords, e.g. ``max_run_seconds=60``)
    bound what a request may ask for; ``server_options`` are the server's own method options
    (``{"rsim": {"planner": "openai:..."}}``), which requests cannot change where they are server settings;
    ``list_traces`` turns on ``GET /v1/traces`` (off: it lists every client's problems)."""
    limits = replace(limits or ServeLimits(), **limit_overrides)
    app = FastAPI(title="thoughtgraph", docs_url=None, redoc_url=None, openapi_url=None)
    traces = Traces(trace_limit)
    app.state.traces = traces
    app.state.limits = limits
    slots = RunSlots(limits.max_concurrent_runs, grace=limits.header_timeout_seconds)

    app.add_middleware(Guard, api_key=api_key, max_body_bytes=limits.max_body_bytes)

    @app.exception_handler(RequestError)
    async def refused(_: Request, error: RequestError) -> JSONResponse:
        return JSONResponse(error_body(str(error), "invalid_request_error", param=error.param, code=error.code),
                            status_code=error.status)  # fmt: skip

    @app.get("/v1/models")
    async def models() -> dict:
        owner = f"thoughtgraph ({backend.spec})"
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": owner}
                                           for name in METHODS]}  # fmt: skip

    @app.get("/v1/traces")
    async def recent_traces() -> dict:
        """The runs the server remembers, oldest first: id, model, the problem, the answer (only with
        ``list_traces``)."""
        if not list_traces:
            raise RequestError("listing traces is off on this server (it would show every client's problems); read "
                               "a trace by the id its completion returned", status=404)  # fmt: skip
        return {"object": "list", "data": [
            {"id": trace_id, "model": run.method, "problem": run.problem, "answer": solution.answer}
            for trace_id, (run, solution) in traces.runs.items()
        ]}  # fmt: skip

    @app.get("/v1/traces/{trace_id}")
    async def trace(trace_id: str, format: str = "json") -> Response:
        if trace_id not in traces.runs:
            raise RequestError(f"no trace {trace_id!r} (the server keeps the last {traces.limit})", status=404)
        run, solution = traces.runs[trace_id]
        if format == "html":
            page = solution.graph.to_html(f"{run.method}: {run.problem[:80]}") if solution.graph else ""
            return HTMLResponse(page, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})
        if format != "json":
            raise RequestError("format must be json or html", param="format")
        return JSONResponse({"id": trace_id, "model": run.method, "problem": run.problem, **solution.to_dict()})

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        run = parse_request(parse_json(await read_body(request, limits), limits), limits, server_options)
        slot = slots.take()
        if slot is None:
            return JSONResponse(error_body(f"the server is running {slots.limit} requests, its limit; retry shortly",
                                           "rate_limit_error", code="server_busy"),
                                status_code=429, headers={"Retry-After": "1"})  # fmt: skip
        trace_id = uuid.uuid4().hex
        if run.stream:
            asyncio.get_running_loop().call_later(slots.grace, slot.release_unless_started)
            return StreamingResponse(holding(slot, stream(run, trace_id)), media_type="text/event-stream",
                                     headers={"X-Thoughtgraph-Trace": trace_id})  # fmt: skip
        try:
            return await respond(request, run, trace_id)
        finally:
            slot.release()

    async def holding(slot: RunSlot, events: AsyncIterator[str]) -> AsyncIterator[str]:
        """A stream that holds its run slot until it ends or its client leaves."""
        slot.started = True
        try:
            async for event in events:
                yield event
        finally:
            slot.release()

    async def respond(request: Request, run: RunRequest, trace_id: str) -> Response:
        task = asyncio.create_task(execute(run, trace_id, None))
        while not task.done():
            await asyncio.wait({task}, timeout=DISCONNECT_POLL_SECONDS)
            if not task.done() and await request.is_disconnected():
                task.cancel()
                break
        try:
            solution = await task
        except asyncio.CancelledError:
            return Response(status_code=499)
        except RunFailed as failure:
            return failed(failure)
        except Exception as error:
            message = f"internal error during the run: {type(error).__name__}: {error}"
            return JSONResponse(error_body(message, "server_error"), status_code=500)
        return JSONResponse(completion(run, trace_id, solution), headers={"X-Thoughtgraph-Trace": trace_id})

    async def execute(run: RunRequest, trace_id: str, on_thought: Any) -> Solution:
        budget = Budget(**run.budget)  # the request's budgets, already lowered to the server's ceilings
        try:
            solution = await run_method(run.problem, run.method, backend, run.config, budget, seed=run.seed,
                                        on_thought=on_thought)  # fmt: skip
        except BackendError as error:
            raise RunFailed(error, budget.ledger.to_dict()) from None
        traces.add(trace_id, run, solution)
        return solution

    def failed(failure: RunFailed) -> JSONResponse:
        message = f"the backend failed during the run: {type(failure.error).__name__}: {failure.error}"
        return JSONResponse(error_body(message, "backend_error", usage=openai_usage(failure.usage),
                                       ledger=failure.usage), status_code=502)  # fmt: skip

    def answer_text(run: RunRequest, solution: Solution) -> str:
        return cut_at_stop(solution.answer if solution.answer is not None else "", run.stop)

    def reasoning_text(solution: Solution) -> str:
        """The reasoning; for a run without an answer, why (the content stays empty: a client grades it)."""
        why = solution.why_no_answer()
        return solution.reasoning if why is None else f"{solution.reasoning}\n(no answer: {why})".lstrip()

    def completion(run: RunRequest, trace_id: str, solution: Solution) -> dict:
        return {
            "id": f"chatcmpl-{trace_id}", "object": "chat.completion", "created": int(time.time()),
            "model": run.method,
            "choices": [{"index": 0, "finish_reason": "length" if solution.stopped_by else "stop",
                         "message": {"role": "assistant", "content": answer_text(run, solution),
                                     "reasoning_content": reasoning_text(solution)}}],
            "usage": openai_usage(solution.usage),
            "thoughtgraph": extension(trace_id, solution),
        }  # fmt: skip

    def extension(trace_id: str, solution: Solution) -> dict:
        return {"trace_id": trace_id, "trace_url": f"/v1/traces/{trace_id}", "stopped_by": solution.stopped_by,
                "candidates": dict(solution.candidates), "ledger": solution.usage}  # fmt: skip

    def chunk(run: RunRequest, trace_id: str, delta: dict, finish: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        body = {"id": f"chatcmpl-{trace_id}", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": run.method, "choices": [choice], **extra}  # fmt: skip
        return f"data: {json.dumps(body)}\n\n"

    async def stream(run: RunRequest, trace_id: str) -> AsyncIterator[str]:
        yield chunk(run, trace_id, {"role": "assistant", "content": ""})
        events = thoughts_then_result(lambda on_thought: execute(run, trace_id, on_thought))
        try:  # closing the events (a client that went away) cancels the run
            async for item in events:
                if isinstance(item, ThoughtNode):
                    yield chunk(run, trace_id, {"reasoning_content": item.text.strip() + "\n"})
                    continue
                if item.answer is None:
                    yield chunk(run, trace_id, {"reasoning_content": f"(no answer: {item.why_no_answer()})\n"})
                yield chunk(run, trace_id, {"content": answer_text(run, item)})
                yield chunk(run, trace_id, {}, "length" if item.stopped_by else "stop",
                            thoughtgraph=extension(trace_id, item))  # fmt: skip
                if run.include_usage:
                    usage = {"id": f"chatcmpl-{trace_id}", "object": "chat.completion.chunk",
                             "created": int(time.time()), "model": run.method, "choices": [],
                             "usage": openai_usage(item.usage)}  # fmt: skip
                    yield f"data: {json.dumps(usage)}\n\n"
                yield "data: [DONE]\n\n"
        except RunFailed as failure:
            yield f"data: {json.dumps(json.loads(failed(failure).body))}\n\n"
        except Exception as error:
            message = f"internal error during the run: {type(error).__name__}: {error}"
            yield f"data: {json.dumps(error_body(message, 'server_error'))}\n\n"
        finally:
            await events.aclose()

    return app
