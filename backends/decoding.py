"""One completion's text as its tokens arrive, for engines that sample token by token (llama.cpp).

:class:`CompletionText` turns sampled token pieces into text and decides when decoding ends: an
end-of-generation token, a stop string (cut before it), the stop pattern (cut after its match), the token
budget, or cancellation. ``min_tokens`` holds stop strings back until that many tokens exist (the engine also
masks end-of-generation tokens until then). Logprobs and token strings are kept for the tokens the final text
covers.
"""

from __future__ import annotations

import codecs
import re

from thoughtgraph.backends.types import Choice, Request


class CompletionText:
    def __init__(self, request: Request, budget: int) -> None:
        self.request = request
        self.budget = budget
        self.pieces: list[bytes] = []
        self.logprobs: list[float] = []
        self.text = ""
        self.finish_reason: str | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")  # holds split characters
        self._longest_stop = max((len(s) for s in request.stop), default=0)
        self._stop_pattern = re.compile(request.stop_pattern) if request.stop_pattern else None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def end(self, reason: str) -> None:
        """Finish for a reason found outside the text: ``"stop"`` (end-of-generation token), ``"cancelled"``."""
        self.finish_reason = self.finish_reason or reason

    def add(self, piece: bytes, logprob: float | None = None) -> bool:
        """Append one sampled token; True while decoding should go on."""
        request = self.request
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
        if len(self.pieces) >= self.budget:
            self.finish_reason = "length"
            return False
        return True

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
