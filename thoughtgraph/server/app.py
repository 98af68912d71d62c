"""The FastAPI app behind ``thoughtgraph serve``: ``/v1/models``, ``/v1/chat/completions`` (plain and
server-sent events) and ``/v1/traces/{id}`` (the run's thought graph as JSON or HTML).

Every request runs its method on the one shared backend, so requests from all clients reach the
engine together (the engine batches or queues them). A client that disconnects cancels its run: the
budget and the engine's work stop with it. Traces of the last ``trace_limit`` runs stay in memory.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from agents.runtime import Budget
from backends import Backend
from backends.errors import BackendError
from reasoning.api import METHODS, run_method, thoughts_then_result
from reasoning.graph import ThoughtNode
from reasoning.solution import Solution
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
    """API key and declared body size, checked before a request reaches the app. Plain ASGI (not
    Starlette's BaseHTTPMiddleware, which hides client disconnects from the handlers)."""

    def __init__(self, app: Any, api_key: str | None, max_body_bytes: int) -> None:
        self.app, self.api_key, self.max_body_bytes = app, api_key, max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
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


class Traces:
    """The last ``limit`` runs by trace id (oldest dropped first)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.runs = limit, OrderedDict[str, tuple[RunRequest, Solution]]()

    def add(self, trace_id: str, request: RunRequest, solution: Solution) -> None:
        self.runs[trace_id] = (request, solution)
        while len(self.runs) > self.limit:
            self.runs.popitem(last=False)


def create_app(
    backend: Backend,
    *,
    api_key: str | None = None,
    max_body_bytes: int = 1 << 20,
    trace_limit: int = 1000,
    max_run_seconds: float | None = 600.0,
) -> FastAPI:
    """The app serving every method on ``backend``; with ``api_key``, requests need ``Authorization:
    Bearer <key>``; bodies over ``max_body_bytes`` are refused with 413; no run lasts longer than
    ``max_run_seconds`` (a request's ``max_seconds`` may ask for less)."""
    app = FastAPI(title="thoughtgraph", docs_url=None, redoc_url=None)
    traces = Traces(trace_limit)
    app.state.traces = traces

    app.add_middleware(Guard, api_key=api_key, max_body_bytes=max_body_bytes)

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
        """The runs the server remembers, oldest first: id, model, the problem, the answer."""
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
            return HTMLResponse(solution.graph.to_html(f"{run.method}: {run.problem[:80]}") if solution.graph else "")
        if format != "json":
            raise RequestError("format must be json or html", param="format")
        return JSONResponse({"id": trace_id, "model": run.method, "problem": run.problem, **solution.to_dict()})

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.body()
        if len(body) > max_body_bytes:
            raise RequestError(f"the request body is over {max_body_bytes:,} bytes", status=413)
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise RequestError(f"the request body is not JSON: {error}") from None
        run = parse_request(payload)
        trace_id = uuid.uuid4().hex
        if run.stream:
            return StreamingResponse(stream(run, trace_id), media_type="text/event-stream",
                                     headers={"X-Thoughtgraph-Trace": trace_id})  # fmt: skip
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
        limits = dict(run.budget)
        if max_run_seconds is not None:
            limits["max_seconds"] = min(limits.get("max_seconds", max_run_seconds), max_run_seconds)
        budget = Budget(**limits)
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

    def completion(run: RunRequest, trace_id: str, solution: Solution) -> dict:
        return {
            "id": f"chatcmpl-{trace_id}", "object": "chat.completion", "created": int(time.time()),
            "model": run.method,
            "choices": [{"index": 0, "finish_reason": "length" if solution.stopped_by else "stop",
                         "message": {"role": "assistant", "content": answer_text(run, solution),
                                     "reasoning_content": solution.reasoning}}],
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
