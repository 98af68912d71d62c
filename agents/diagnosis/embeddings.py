"""Embedding retrieval for the knowledge base, next to BM25: where an embedding model is available, entries
and past incidents are embedded at mining time and a query's neighbours by cosine similarity are fused with
BM25's ranking (reciprocal-rank fusion, k = 60, as in Cormack et al. 2009: scale-free, so BM25 scores and
cosines need no common unit).

The shipped embedder runs a GGUF model in llama.cpp with mean pooling (``llamacpp:smollm2`` by default).
SmolLM2-135M is a chat model, not a trained embedding model, so its vectors are weak; any GGUF embedding
model (e.g. a nomic-embed or bge GGUF file) plugs in the same way: ``--embeddings llamacpp:/path/model.gguf``.
"""

from __future__ import annotations

import threading
from typing import Protocol

import numpy as np

RRF_K = 60


class Embedder(Protocol):
    id: str
    """Names the model: a knowledge base is only queried with the embedder it was mined with."""

    def embed(self, texts: list[str]) -> np.ndarray:
        """One L2-normalised row per text."""
        ...


class LlamaCppEmbedder:
    def __init__(self, spec: str = "llamacpp:smollm2", *, n_threads: int = 2, n_ctx: int = 512) -> None:
        from llama_cpp import LLAMA_POOLING_TYPE_MEAN, Llama

        from thoughtgraph.backends.presets import resolve_gguf

        engine, _, target = spec.partition(":")
        if engine != "llamacpp" or not target:
            raise ValueError(f"embeddings need a llamacpp:MODEL spec (a preset or a GGUF path), got {spec!r}")
        path = resolve_gguf(target)
        self.id = f"{spec}@{path.stat().st_size}"
        self._llm = Llama(
            model_path=str(path), embedding=True, pooling_type=LLAMA_POOLING_TYPE_MEAN, n_threads=n_threads,
            n_ctx=n_ctx, n_batch=n_ctx, verbose=False,
        )  # fmt: skip
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        rows = []
        with self._lock:  # one llama.cpp context: calls from concurrent graph nodes take turns
            for text in texts:
                tokens = self._llm.tokenize(text.encode("utf-8", errors="replace"))[: self._llm.n_ctx() - 1]
                rows.append(self._llm.embed(self._llm.detokenize(tokens).decode("utf-8", errors="replace")))
        return normalise(np.asarray(rows, dtype=np.float64))


def normalise(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


def cosine_ranking(vectors: np.ndarray, query: np.ndarray) -> list[int]:
    """Indices by cosine similarity to ``query``, best first (ties by index)."""
    scores = vectors @ query
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def fuse(*rankings: list[int]) -> dict[int, float]:
    """Reciprocal-rank fusion: each ranking gives item i 1 / (RRF_K + rank + 1)."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking):
            fused[item] = fused.get(item, 0.0) + 1.0 / (RRF_K + rank + 1)
    return fused
