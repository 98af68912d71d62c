"""Where a completion ends: the one place stop strings, the stop pattern and token budgets are applied.

:class:`CompletionText` turns token pieces into text as they arrive and decides when decoding ends: an
end-of-generation token, a stop string (cut before it), the stop pattern (cut after its match), a repeated
sentence (``stop_repeated_sentence``: cut before the repeat), the token budget, or cancellation. ``min_tokens``
holds stop strings back until that many tokens exist (engines also mask end-of-generation tokens until then).
Logprobs and token strings are kept for the tokens the final text covers. Engines that sample token by token
(llama.cpp, hf's refill loop) feed it each token; a completion an engine produced whole (hf ``generate``, the
scripted double, a remote server that cannot stop on a pattern) is replayed through it by
:meth:`CompletionText.replay`, so every backend cuts the same way.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Sequence

from thoughtgraph.backends.types import Choice, FinishReason, Request

SENTENCE_END = re.compile(r"[.!?\n]")
"""What ends a sentence: a full stop, a question or exclamation mark, or a line end."""
STEP_LABEL = re.compile(r"^\s*(?:step\s*\d+\s*[:.)-]|\d+\s*[.)]|[-*\u2022])\s*", re.IGNORECASE)
"""A leading "Step 3:", "3." or bullet, which a copied sentence may change while it repeats."""


class CompletionText:
    def __init__(self, request: Request, budget: int | float | None = None) -> None:
        """``budget``: tokens after which decoding ends with ``"length"`` (default: the request's
        ``max_tokens``)."""
        budget = request.max_tokens if budget is None else budget
        self.request = request
        self.budget = budget
        self.pieces: list[bytes] = []
        self.logprobs: list[float] = []
        self.text = ""
        self.finish_reason: str | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")  # holds split characters
        self._longest_stop = max((len(s) for s in request.stop), default=0)
        self._stop_pattern = re.compile(request.stop_pattern) if request.stop_pattern else None
        self._sentences: set[str] = set()
        self._sentences_read_to = 0

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def end(self, reason: str) -> None:
        """Finish for a reason found outside the text: ``"stop"`` (end-of-generation token), ``"cancelled"``."""
        self.finish_reason = self.finish_reason or reason

    @classmethod
    def replay(
        cls,
        request: Request,
        pieces: Sequence[bytes | str],
        logprobs: Sequence[float] | None = None,
        *,
        finish_reason: FinishReason = "stop",
        budget: int | float = float("inf"),
    ) -> Choice:
        """The choice a token-by-token engine would have made of ``pieces``: cut at the first stop string or
        pattern match, or at ``budget`` tokens; ``finish_reason`` when none of those ends it first."""
        completion = cls(request, budget)
        for index, piece in enumerate(pieces):
            if not completion.add(piece, logprobs[index] if logprobs is not None else None):
                break
        completion.end(finish_reason)
        return completion.choice()

    def add(self, piece: bytes | str, logprob: float | None = None) -> bool:
        """Append one sampled token; True while decoding should go on."""
        request = self.request
        if isinstance(piece, str):
            piece = piece.encode("utf-8")
        if logprob is not None:
            self.logprobs.append(logprob)
        self.pieces.append(piece)
        previous_length = len(self.text)
        self.text += self._decoder.decode(piece)
        if request.stop and len(self.pieces) > request.min_tokens:
            start = max(0, previous_length - self._longest_stop)
            hits = [i for i in (self.text.find(s, start) for s in request.stop) if i >= 0]
            if hits:
                self.text = self.text[: min(hits)]
                self.finish_reason = "stop"
                return False
        pattern = self._stop_pattern
        if pattern is not None and (found := pattern.search(self.text, max(0, previous_length - 400))):
            self.text, self.finish_reason = self.text[: found.end()].rstrip(), "stop"
            return False
        if request.stop_repeated_sentence and (repeat := self._first_repeat()) is not None:
            self.text, self.finish_reason = self.text[:repeat].rstrip(), "repetition"
            return False
        if len(self.pieces) >= self.budget:
            self.finish_reason = "length"
            return False
        return True

    def _first_repeat(self) -> int | None:
        """Where the first sentence finished since the last look that repeats an earlier one starts, if any."""
        for end in SENTENCE_END.finditer(self.text, self._sentences_read_to):  # linear: each mark is read once
            start, self._sentences_read_to = self._sentences_read_to, end.end()
            key = STEP_LABEL.sub("", self.text[start : end.end()]).strip()
            if len(key) >= self.request.stop_repeated_sentence:
                if key in self._sentences:
                    return start
                self._sentences.add(key)
        return None

    def choice(self) -> Choice:
        kept = _tokens_within(self.pieces, len(self.text.encode()))
        with_logprobs = self.request.logprobs
        return Choice(
            text=self.text,
            finish_reason=self.finish_reason or "length",
            completion_tokens=len(self.pieces),
            tokens=[p.decode("utf-8", errors="replace") for p in self.pieces[:kept]] if with_logprobs else None,
            logprobs=self.logprobs[:kept] if with_logprobs else None,
        )


def _tokens_within(pieces: list[bytes], byte_length: int) -> int:
    """How many leading pieces start before ``byte_length`` bytes of text: the tokens a cut text keeps."""
    offset = 0
    for count, piece in enumerate(pieces):
        if offset >= byte_length:
            return count
        offset += len(piece)
    return len(pieces)


def cut(choice: Choice, request: Request) -> Choice:
    """``choice`` from an engine that could not stop on ``request``'s stop strings, pattern or repeat, cut as if it had
    (its tokens, or its whole text as one piece when it has none). Usage stays what the engine produced."""
    pieces = choice.tokens if choice.tokens is not None else [choice.text]
    cut_choice = CompletionText.replay(request, pieces, choice.logprobs, finish_reason=choice.finish_reason)
    if choice.tokens is None:
        cut_choice.tokens = cut_choice.logprobs = None
    cut_choice.completion_tokens = choice.completion_tokens
    return cut_choice


class IncrementalDetokenizer:
    """Token ids to text pieces, one token at a time, for tokenizers that decode only whole sequences (HF):
    each new token's text is what decoding a short window grows by, held back while it ends in a partial
    character."""

    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._prefix = self._read = 0

    def add(self, token: int) -> str:
        self._ids.append(token)
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return after[len(before) :]
