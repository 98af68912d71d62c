"""Backend specs: one string selects a backend and its model.

==============================================  ===============================================
``llamacpp:smollm2``                            the embedded default (a GGUF shipped on PyPI)
``llamacpp:/path/model.gguf``                   any GGUF file, in-process llama.cpp
``llamacpp:smollm2#threads=1``                  ... with llama.cpp's thread count set (default: idle cores)
``openai:http://127.0.0.1:8080/v1#model``       any OpenAI-compatible server
``hf:/path/to/hf-folder``                       transformers; ``hf:smollm2`` or ``hf:/x.gguf`` dequantise a GGUF
``hf:/path/to/hf-folder#adapter=/path/lora``    ... with a PEFT LoRA adapter on top
``vllm:Qwen/Qwen2.5-Math-1.5B-Instruct``        vLLM offline engine (optional install)
``scripted:tests/scripts/x.yaml``               the ScriptedBackend test double
==============================================  ===============================================

Engines are imported only when their scheme is used, so ``import backends`` stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from thoughtgraph.backends.base import Backend
from thoughtgraph.backends.cache import RequestCache
from thoughtgraph.backends.errors import BackendConfigError


def _llamacpp(target: str, **options: Any) -> Backend:
    from thoughtgraph.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(target, **options)


def _openai(target: str, **options: Any) -> Backend:
    from thoughtgraph.backends.openai_server import OpenAIBackend

    base_url, _, model = target.partition("#")
    return OpenAIBackend(base_url or None, model or None, **options)


def _hf(target: str, **options: Any) -> Backend:
    from thoughtgraph.backends.hf import HFBackend

    return HFBackend(target, **options)


def _vllm(target: str, **options: Any) -> Backend:
    from thoughtgraph.backends.vllm_backend import VLLMBackend

    return VLLMBackend(target, **options)


def _scripted(target: str, **options: Any) -> Backend:
    from thoughtgraph.backends.scripted import ScriptedBackend

    return ScriptedBackend.from_file(target, **options)


FACTORIES: dict[str, Callable[..., Backend]] = {
    "llamacpp": _llamacpp,
    "openai": _openai,
    "hf": _hf,
    "vllm": _vllm,
    "scripted": _scripted,
}

DEFAULT_BACKEND = "llamacpp:smollm2"


def register_backend(scheme: str, factory: Callable[..., Backend]) -> None:
    """Make ``"<scheme>:<target>"`` specs build ``factory(target, cache=..., **options)`` everywhere a backend
    spec is read (``solve``, the CLI, ``serve``, the eval runner)."""
    if not scheme.isidentifier() or scheme != scheme.lower():
        raise ValueError(f"backend scheme {scheme!r} must be a lower-case identifier")
    if scheme in FACTORIES and FACTORIES[scheme] is not factory:
        raise ValueError(f"a backend scheme named {scheme!r} is already registered")
    FACTORIES[scheme] = factory


@lru_cache(maxsize=4)
def shared_backend(spec: str) -> Backend:
    """One backend per spec string in the process, so repeated ``solve(..., backend="llamacpp:smollm2")``
    calls, a chat session or an evaluation load the model once (a scripted spec therefore keeps its place in
    its response lists)."""
    return create_backend(spec)


def create_backend(
    spec: str | Backend = DEFAULT_BACKEND,
    *,
    cache: str | Path | RequestCache | None = None,
    **options: Any,
) -> Backend:
    """Build the backend a spec names. ``cache`` is a SQLite path (or cache) for reproducible reruns."""
    if isinstance(spec, Backend):
        return spec
    if not isinstance(spec, str) or ":" not in spec:
        raise BackendConfigError(
            f"backend spec {spec!r} is not of the form <scheme>:<target>; "
            f"schemes: {', '.join(FACTORIES)} (e.g. {DEFAULT_BACKEND})"
        )
    scheme, _, target = spec.partition(":")
    factory = FACTORIES.get(scheme)
    if factory is None:
        raise BackendConfigError(f"unknown backend {scheme!r} in spec {spec!r}; known backends: {', '.join(FACTORIES)}")
    if not target and scheme != "openai":
        raise BackendConfigError(f"backend spec {spec!r} names no model after '{scheme}:'")
    if cache is not None and not isinstance(cache, RequestCache):
        cache = RequestCache(cache)
    return factory(target, cache=cache, **options)
