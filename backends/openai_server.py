"""Any OpenAI-compatible server through the official ``openai`` SDK (``openai:<base_url>#<model>``).

vLLM serve, SGLang, llama.cpp's server and OpenAI itself all speak this protocol. Requests are
independent HTTP calls: they run concurrently up to ``max_concurrency`` and each is retried on
its own. The API key is read from the environment (``OPENAI_API_KEY`` by default) and never
appears in a repr, a log line or an error message.

Servers differ in how they accept output constraints, so ``structured_outputs`` names the dialect:
``openai`` (JSON schema through ``response_format``), ``vllm`` (JSON schema, regex and choice
through ``structured_outputs``) or ``llamacpp`` (all three as a GBNF ``grammar``).

Replicas: a spec may name several base URLs of servers serving the same model, separated by commas
(``openai:http://a:8000/v1,http://b:8000/v1#model``). Each request goes to the live replica with the
fewest requests in flight; a replica that cannot be reached is taken out for ``revive_seconds`` and the
request is retried (by the usual retry policy) on another; the ledger's events count the calls each
replica served (``replica:<url>``) and the replicas taken out (``replica_down:<url>``).

Stop patterns: a server stops only at fixed strings, so the text of a chat request with a ``stop_pattern`` (a
chain that ends once it states "The answer is N.") or a ``stop_repeated_sentence`` is cut afterwards (the tokens
past the cut are billed). ``stream_stop=True`` instead streams such a request and closes the stream as soon as
the text matches (``CompletionText``, the rule every engine applies); llama_cpp.server stops decoding when the
client goes away (checked in ``tests/backends/test_openai_server.py``; other servers were not checked here), so
the tokens after the answer are never generated. It is off by default because streaming costs more than it
saves on llama_cpp.server on 2 cores (20 GSM8K problems at one in flight: 41-45 s streamed against 32-34 s
whole, though the whole replies held 14% more tokens). The cost is the server's: it hands every streamed token
through a thread pool and checks for a disconnect, beside llama.cpp's threads; reading the events as raw lines
instead of the SDK's chunk objects did not help (49-51 s). Servers built for streaming (vLLM, SGLang on a GPU)
were not measured here. A closed stream carries no usage: the completion tokens are then the chunks
received (one token each from llama.cpp's server) and the prompt tokens the backend's estimate, counted as the
event ``usage_estimated``; a server that sends usage in its stream (``stream_options.include_usage``) is taken
at its word.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any, Literal

from thoughtgraph.backends.base import Backend
from thoughtgraph.backends.decoding import CompletionText
from thoughtgraph.backends.errors import BackendConfigError, InvalidRequestError, TransientBackendError
from thoughtgraph.backends.grammar import constraint_to_gbnf
from thoughtgraph.backends.ledger import record_event
from thoughtgraph.backends.types import Capabilities, Choice, ConstraintKind, Request, Result, Usage

Dialect = Literal["openai", "vllm", "llamacpp"]
_DIALECT_CONSTRAINTS: dict[str, frozenset[ConstraintKind]] = {
    "openai": frozenset({"json_schema"}),
    "vllm": frozenset({"json_schema", "regex", "choice"}),
    "llamacpp": frozenset({"json_schema", "regex", "choice"}),
}
DEFAULT_BASE_URL = "https://api.openai.com/v1"
_SAMPLING_DEFAULTS: dict[str, dict[str, float | int]] = {
    "openai": {},
    "vllm": {"top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0},
    "llamacpp": {"top_k": 0, "min_p": 0.0, "typical_p": 1.0, "repeat_penalty": 1.0, "mirostat_mode": 0},
}
"""Every sampler a server would otherwise apply by its own default, turned off, so that a request means the same
distribution as in-process (temperature and top_p only): llama.cpp's server applies top_k 40, min_p 0.05 and a
repeat penalty of 1.1 unless told otherwise. OpenAI's own API takes none of these fields and applies none; every
dialect gets presence and frequency penalties of 0, which the OpenAI protocol itself defines."""


class OpenAIBackend(Backend):
    requests_are_independent_calls = True

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 8,
        timeout_seconds: float = 120.0,
        logprobs: bool = True,
        structured_outputs: Dialect = "openai",
        continue_messages: bool = False,
        revive_seconds: float = 10.0,
        stream_stop: bool = False,
        **options: Any,
    ) -> None:
        if structured_outputs not in _DIALECT_CONSTRAINTS:
            raise BackendConfigError(
                f"structured_outputs must be one of {sorted(_DIALECT_CONSTRAINTS)}, got {structured_outputs!r}"
            )
        if max_concurrency < 1:
            raise BackendConfigError(f"max_concurrency must be >= 1, got {max_concurrency}")
        urls = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).split(",")
        self.replicas = [url.strip().rstrip("/") for url in urls if url.strip()]
        if not self.replicas:
            raise BackendConfigError(f"no base URL in {base_url!r}")
        self.base_url = ",".join(self.replicas)
        self.revive_seconds = revive_seconds
        self.stream_stop = stream_stop
        self.in_flight = dict.fromkeys(self.replicas, 0)
        self.down_until = dict.fromkeys(self.replicas, 0.0)
        self.model = model
        self.dialect = structured_outputs
        self.max_concurrency = max_concurrency
        self.timeout_seconds = timeout_seconds
        self._api_key_env = api_key_env
        super().__init__(f"openai:{self.base_url}#{model or ''}", model_id=f"openai:{self.base_url}#{model}", **options)
        self.capabilities = Capabilities(
            chat=True,
            raw_prompt=True,
            logprobs=logprobs,
            constraints=_DIALECT_CONSTRAINTS[structured_outputs],
            batching=False,
            continue_message=continue_messages,
        )
        self._per_loop: tuple[asyncio.AbstractEventLoop, dict[str, Any], asyncio.Semaphore] | None = None

    def _clients(self) -> tuple[dict[str, Any], asyncio.Semaphore]:
        """One client per replica and one semaphore per event loop (httpx pools cannot cross loops)."""
        from openai import AsyncOpenAI

        loop = asyncio.get_running_loop()
        if self._per_loop is None or self._per_loop[0] is not loop:
            clients = {
                url: AsyncOpenAI(
                    base_url=url,
                    api_key=os.environ.get(self._api_key_env) or "not-needed",  # local servers ignore it
                    max_retries=0,  # retries are ours (backends.retry), so every backend retries alike
                    timeout=self.timeout_seconds,
                )
                for url in self.replicas
            }
            self._per_loop = (loop, clients, asyncio.Semaphore(self.max_concurrency * len(self.replicas)))
        return self._per_loop[1], self._per_loop[2]

    def pick_replica(self) -> str:
        """The live replica with the fewest requests in flight (ties: listed order); when every replica
        is down, the one that comes back first."""
        now = time.monotonic()
        live = [url for url in self.replicas if self.down_until[url] <= now]
        if not live:
            return min(self.replicas, key=lambda url: self.down_until[url])
        return min(live, key=lambda url: self.in_flight[url])

    def mark_down(self, url: str) -> None:
        self.down_until[url] = time.monotonic() + self.revive_seconds
        record_event(f"replica_down:{url}")

    async def _resolve_model(self, client: Any) -> str:
        if self.model is None:
            models = await client.models.list()
            if not models.data:
                raise BackendConfigError(f"the server at {self.base_url} lists no models; name one after '#'")
            self.model = models.data[0].id
            self.model_id = f"openai:{self.base_url}#{self.model}"
        return self.model

    async def _generate(self, requests: list[Request]) -> list[Result]:
        import openai

        clients, semaphore = self._clients()
        async with semaphore:
            url = self.pick_replica()
            self.in_flight[url] += 1
            try:
                model = await self._resolve_model(clients[url])
                results = [await self._call(clients[url], model, request) for request in requests]
                record_event(f"replica:{url}", len(requests))
                return results
            except (openai.APIConnectionError, openai.APITimeoutError) as error:
                if len(self.replicas) > 1:
                    self.mark_down(url)
                raise TransientBackendError(f"cannot reach {url}: {error}") from error
            except (openai.RateLimitError, openai.InternalServerError) as error:
                raise TransientBackendError(f"server at {url} is busy or failing: {error}") from error
            except (openai.AuthenticationError, openai.PermissionDeniedError) as error:
                raise BackendConfigError(
                    f"server at {self.base_url} refused the credentials in ${self._api_key_env}"
                ) from error
            except openai.NotFoundError as error:
                raise BackendConfigError(
                    f"server at {self.base_url} has no model or endpoint {self.model!r}: {error}"
                ) from error
            except openai.BadRequestError as error:
                raise InvalidRequestError(f"server at {self.base_url} rejected the request: {error}") from error
            except (openai.APIResponseValidationError, AttributeError, TypeError, KeyError) as error:
                raise BackendConfigError(
                    f"the server at {self.base_url} answered with something that is not an OpenAI-compatible "
                    f"response ({type(error).__name__}); is the URL right (it usually ends in /v1)?"
                ) from error
            finally:
                self.in_flight[url] -= 1

    def _constraint_arguments(self, request: Request) -> dict[str, Any]:
        constraint = request.constraint
        if constraint is None:
            return {}
        if self.dialect == "openai":
            schema = {"name": "output", "schema": constraint.json_schema, "strict": True}
            return {"response_format": {"type": "json_schema", "json_schema": schema}}
        if self.dialect == "vllm":
            key = {"json_schema": "json", "regex": "regex", "choice": "choice"}[constraint.kind]
            value = {"json": constraint.json_schema, "regex": constraint.pattern, "choice": constraint.choices}[key]
            return {"extra_body": {"structured_outputs": {key: list(value) if key == "choice" else value}}}
        if constraint.kind == "json_schema":
            from llama_cpp.llama_grammar import json_schema_to_gbnf

            return {"extra_body": {"grammar": json_schema_to_gbnf(json.dumps(constraint.json_schema))}}
        return {"extra_body": {"grammar": constraint_to_gbnf(constraint)}}

    async def _call(self, client: Any, model: str, request: Request) -> Result:
        common: dict[str, Any] = {
            "model": model,
            "n": request.n,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "presence_penalty": 0.0,
            "frequency_penalty": 0.0,
            "max_tokens": request.max_tokens,
            **self._constraint_arguments(request),
        }
        if request.stop:
            common["stop"] = list(request.stop)
        extra = common.setdefault("extra_body", {})
        extra.update(_SAMPLING_DEFAULTS[self.dialect])
        if request.min_tokens:
            extra["min_tokens"] = request.min_tokens  # vLLM and SGLang; others ignore unknown fields
        if request.continue_final_message:  # vLLM's chat-template options
            extra.update(continue_final_message=True, add_generation_prompt=False)
        if not extra:
            del common["extra_body"]
        if request.seed is not None:
            common["seed"] = request.seed
        started = time.perf_counter()
        if request.messages is not None:
            messages = [{"role": m.role, "content": m.content} for m in request.messages]
            if self.stream_stop and request.stops_on_text and request.n == 1 and not request.logprobs:
                return await self._streamed(client, messages, common, request, model, started)
            if request.logprobs:
                common["logprobs"] = True
                common["top_logprobs"] = 0  # the sampled tokens only; some servers need it set to return any
            response = await client.chat.completions.create(messages=messages, **common)
            choices = [self._chat_choice(c, request) for c in response.choices]
        else:
            if request.logprobs:
                common["logprobs"] = 0
            response = await client.completions.create(prompt=request.prompt, **common)
            choices = [self._completion_choice(c, request) for c in response.choices]
        latency = time.perf_counter() - started
        usage = response.usage
        _spread_completion_tokens(choices, usage.completion_tokens if usage else 0)
        details = getattr(usage, "prompt_tokens_details", None) if usage else None
        return Result(
            choices=choices,
            usage=Usage(
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
                latency_seconds=latency,
                cached_prompt_tokens=(getattr(details, "cached_tokens", 0) or 0) if details else 0,
            ),
            model=getattr(response, "model", model) or model,
        )

    async def _streamed(
        self, client: Any, messages: list[dict], common: dict[str, Any], request: Request, model: str, started: float
    ) -> Result:
        """One chat completion streamed, closed once ``CompletionText`` ends it (the stop pattern matches, a sentence
        repeats, a stop string appears)."""
        completion, usage, chunks, served_by = CompletionText(request), None, 0, model
        stream = await client.chat.completions.create(
            messages=messages, stream=True, stream_options={"include_usage": True}, **common
        )
        try:
            async for chunk in stream:
                served_by = getattr(chunk, "model", None) or served_by
                usage = getattr(chunk, "usage", None) or usage
                if not chunk.choices:
                    continue
                piece, finish = chunk.choices[0].delta.content, chunk.choices[0].finish_reason
                if piece:
                    chunks += 1
                    if not completion.add(piece):
                        break  # matched: closing the stream makes the server stop decoding
                if finish:
                    completion.end(_finish(finish))
        finally:
            await stream.close()
        choice = completion.choice()
        if usage is None:
            record_event("usage_estimated")
            prompt_tokens, completion_tokens = self.count_prompt_tokens(request), chunks
        else:
            prompt_tokens, completion_tokens = usage.prompt_tokens, usage.completion_tokens
        choice.completion_tokens = completion_tokens
        return Result(
            choices=[choice],
            usage=Usage(
                prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                latency_seconds=time.perf_counter() - started,
            ),
            model=served_by,
        )  # fmt: skip

    def _chat_choice(self, choice: Any, request: Request) -> Choice:
        tokens = logprobs = None
        if request.logprobs:
            content = getattr(choice.logprobs, "content", None)
            if content is None:
                raise _no_logprobs(self.base_url)
            tokens, logprobs = [t.token for t in content], [float(t.logprob) for t in content]
        return Choice(
            text=choice.message.content or "",
            finish_reason=_finish(choice.finish_reason),
            completion_tokens=len(tokens) if tokens is not None else 0,
            tokens=tokens,
            logprobs=logprobs,
        )

    def _completion_choice(self, choice: Any, request: Request) -> Choice:
        tokens = logprobs = None
        if request.logprobs:
            if choice.logprobs is None or choice.logprobs.token_logprobs is None:
                raise _no_logprobs(self.base_url)
            tokens = list(choice.logprobs.tokens)
            logprobs = [float(x) for x in choice.logprobs.token_logprobs]
        return Choice(
            text=choice.text or "",
            finish_reason=_finish(choice.finish_reason),
            completion_tokens=len(tokens) if tokens is not None else 0,
            tokens=tokens,
            logprobs=logprobs,
        )


def _finish(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


def _no_logprobs(base_url: str) -> BackendConfigError:
    return BackendConfigError(
        f"the server at {base_url} returned no logprobs although they were asked for; "
        "create the backend with logprobs=False so methods that need them refuse it up front"
    )


def _spread_completion_tokens(choices: list[Choice], total: int) -> None:
    """Servers report completion tokens per response; without logprobs, share them out evenly."""
    if choices and all(c.tokens is None for c in choices):
        share, rest = divmod(total, len(choices))
        for i, choice in enumerate(choices):
            choice.completion_tokens = share + (1 if i < rest else 0)
