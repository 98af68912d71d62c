"""transformers on CPU or GPU (``hf:/path/to/folder``, ``hf:/path/model.gguf`` or ``hf:smollm2``).

Concurrent requests are coalesced and run as padded batches: requests with the same sampling
settings share one ``model.generate`` call (seeded sampling is reproducible for the same batch;
see ``_sampling_key``). A GGUF is dequantised by transformers on load
(``gguf_file=``), which is also how the trainers load the embedded model. Logprobs come from the
raw logits of each step (``output_logits``), so they do not depend on temperature or top_p.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from backends.base import Backend
from backends.coalesce import RequestCoalescer
from backends.errors import BackendConfigError
from backends.presets import GGUF_PRESETS, resolve_gguf
from backends.types import Capabilities, Choice, Request, Result, Usage


def locate_hf_model(target: str) -> tuple[Path, str | None]:
    """(folder, gguf file name or None) for an HF folder, a GGUF path or a GGUF preset."""
    if target in GGUF_PRESETS or target.endswith(".gguf"):
        path = resolve_gguf(target)
        return path.parent, path.name
    folder = Path(target).expanduser()
    if not (folder / "config.json").is_file():
        raise BackendConfigError(
            f"hf backend: {str(folder)!r} is not a transformers model folder (no config.json) "
            "and not a .gguf file; models are not downloaded at run time"
        )
    return folder, None


class HFBackend(Backend):
    def __init__(
        self,
        target: str,
        *,
        device: str | None = None,
        max_batch: int = 16,
        **options: Any,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder, gguf_file = locate_hf_model(target)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        extra = {"gguf_file": gguf_file} if gguf_file else {}
        self.tokenizer = AutoTokenizer.from_pretrained(folder, **extra)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **extra)
        self.model.to(self.device).eval()
        super().__init__(f"hf:{target}", model_id=f"hf:{folder / (gguf_file or '')}", **options)
        self.capabilities = Capabilities(
            chat=self.tokenizer.chat_template is not None,
            raw_prompt=True,
            logprobs=True,
            constraints=frozenset(),
            batching=True,
            continue_message=self.tokenizer.chat_template is not None,
        )
        self._end_tokens = {self.tokenizer.eos_token_id, *_as_list(self.model.generation_config.eos_token_id)}
        self._coalescer = RequestCoalescer(self._run_batch, max_batch=max_batch)

    @property
    def batch_sizes(self) -> list[int]:
        return self._coalescer.batch_sizes

    async def _generate(self, requests: list[Request]) -> list[Result]:
        return await self._coalescer.submit(requests)

    def close(self) -> None:
        self._coalescer.close()

    def prompt_ids(self, request: Request) -> list[int]:
        if request.messages is not None:
            text = self.tokenizer.apply_chat_template(
                [{"role": m.role, "content": m.content} for m in request.messages],
                tokenize=False,
                add_generation_prompt=not request.continue_final_message,
                continue_final_message=request.continue_final_message,
            )
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self.tokenizer(request.prompt)["input_ids"]

    def token_pieces(self, text: str) -> list[str]:
        return [self.tokenizer.decode([t]) for t in self.tokenizer(text, add_special_tokens=False)["input_ids"]]

    def count_prompt_tokens(self, request: Request) -> int:
        return len(self.prompt_ids(request))

    def _run_batch(self, requests: list[Request]) -> list[Result]:
        groups: dict[tuple, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(_sampling_key(request), []).append(index)
        results: dict[int, Result] = {}
        for members in groups.values():
            for index, result in zip(members, self._run_group([requests[i] for i in members]), strict=True):
                results[index] = result
        return [results[i] for i in range(len(requests))]

    def _run_group(self, requests: list[Request]) -> list[Result]:
        """One ``generate`` call for requests that share every sampling setting."""
        import torch

        started = time.perf_counter()
        first = requests[0]
        prompts = [self.prompt_ids(r) for r in requests]
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=self.device)
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        seeds = [r.seed for r in requests if r.seed is not None]
        if seeds and first.temperature > 0:
            torch.manual_seed(derived_batch_seed(seeds))
        sampling = (
            {"do_sample": True, "temperature": first.temperature, "top_p": first.top_p, "top_k": 0}
            if first.temperature > 0
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                max_new_tokens=first.max_tokens,
                min_new_tokens=first.min_tokens or None,
                num_return_sequences=first.n,
                pad_token_id=pad,
                return_dict_in_generate=True,
                output_logits=any(r.logprobs for r in requests),
                stop_strings=list(first.stop) or None,
                tokenizer=self.tokenizer if first.stop else None,
                **sampling,
            )
        generated = output.sequences[:, width:]
        token_logprobs = None
        if output.logits is not None:
            steps = [
                torch.log_softmax(step.float(), dim=-1).gather(1, generated[:, t : t + 1]).squeeze(1)
                for t, step in enumerate(output.logits)
            ]
            token_logprobs = torch.stack(steps, dim=1).tolist()
        latency = time.perf_counter() - started
        results = []
        for i, request in enumerate(requests):
            choices = [
                self._choice(generated[row].tolist(), token_logprobs[row] if token_logprobs else None, request)
                for row in range(i * first.n, (i + 1) * first.n)
            ]
            results.append(
                Result(
                    choices=choices,
                    usage=Usage(
                        prompt_tokens=len(prompts[i]),
                        completion_tokens=sum(c.completion_tokens for c in choices),
                        latency_seconds=latency,
                    ),
                    model=self.model_id,
                )
            )
        return results

    def _choice(self, ids: list[int], logprobs: list[float] | None, request: Request) -> Choice:
        length = next((k for k, token in enumerate(ids) if token in self._end_tokens), None)
        finish = "stop" if length is not None else "length"
        ids = ids[:length] if length is not None else ids
        pieces = [self.tokenizer.decode([token]) for token in ids]
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        cut = min((text.find(s) for s in request.stop if s in text), default=-1)
        kept = len(ids)
        if cut >= 0:
            text, finish = text[:cut], "stop"
            kept, offset = 0, 0
            while kept < len(pieces) and offset < cut:
                offset += len(pieces[kept])
                kept += 1
        return Choice(
            text=text,
            finish_reason=finish,
            completion_tokens=len(ids),
            tokens=pieces[:kept] if request.logprobs else None,
            logprobs=logprobs[:kept] if request.logprobs and logprobs else None,
        )


def _sampling_key(request: Request) -> tuple:
    """Requests with equal keys share one ``generate`` call. Seeds are not part of it: transformers
    has one random generator per call, so a batch of seeded requests is seeded from all their seeds
    (reproducible for the same batch; greedy requests do not depend on seeds at all)."""
    return (request.temperature, request.top_p, request.max_tokens, request.min_tokens, request.stop, request.n)


def derived_batch_seed(seeds: list[int]) -> int:
    return int.from_bytes(hashlib.sha256(repr(sorted(seeds)).encode()).digest()[:4], "big")


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]
