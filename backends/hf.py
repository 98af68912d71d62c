"""transformers on CPU or GPU (``hf:/path/to/folder``, ``hf:/path/model.gguf`` or ``hf:smollm2``).

By default requests run in a continuous decode loop (``backends/hf_engine.py``): rows join a running batch and
leave it when done, each with its own sampling settings, budget and stops. ``refill=False`` (and ``from_model``,
the policy being trained, where the tested ``generate`` path is kept) hands requests that arrive together to
padded ``model.generate`` batches instead (``backends/batch_thread.py``), as follows. Requests that differ only
in their sampling settings - temperature, top_p, seed - share one ``model.generate`` call: a per-row logits
processor applies each row's temperature and top_p and draws its token from the row's own seeded generator
(``PerRowSampler``), so BoT's trees with their own temperatures batch together, and a seeded request samples the
same tokens alone or in any batch (up to the float rounding that padding can change in the logits). Requests
group by what ``generate`` cannot vary per row: length limits, stop strings and n (see ``_batch_key``). A GGUF
is dequantised by transformers on load (``gguf_file=``), which is also how the trainers load the embedded model.
Logprobs come from the raw logits of each step (``output_logits``), so they do not depend on temperature or
top_p. Choice constraints (one of a list of strings) are answered by scoring each option's likelihood after the
prompt (``backends/hf_choice.py``); other constraint kinds are not supported here.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from thoughtgraph.backends.base import Backend
from thoughtgraph.backends.batch_thread import BatchThread
from thoughtgraph.backends.decoding import CompletionText, IncrementalDetokenizer
from thoughtgraph.backends.engine_thread import Outcome, run_jobs
from thoughtgraph.backends.errors import BackendConfigError
from thoughtgraph.backends.hf_choice import choice_result_parts, option_logprobs
from thoughtgraph.backends.hf_engine import HFJob, RefillEngine, sample_token
from thoughtgraph.backends.presets import GGUF_PRESETS, resolve_gguf
from thoughtgraph.backends.types import Capabilities, Choice, Request, Result, Usage


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


def split_adapter(target: str, adapter: str | None = None) -> tuple[str, str | None]:
    """``DIR#adapter=PATH`` -> (DIR, PATH): a PEFT LoRA adapter loaded on top of the base model."""
    base, _, fragment = target.partition("#")
    if not fragment:
        return target, adapter
    key, _, value = fragment.partition("=")
    if key != "adapter" or not value:
        raise BackendConfigError(f"hf spec option {fragment!r} is not understood; the form is hf:MODEL#adapter=PATH")
    return base, value


def check_adapter(adapter: str) -> Path:
    """The adapter's folder, or a clear error before any model loads."""
    folder = Path(adapter).expanduser()
    if not folder.is_dir():
        raise BackendConfigError(f"hf backend: no adapter folder at {str(folder)!r}")
    if not (folder / "adapter_config.json").is_file():
        raise BackendConfigError(f"hf backend: {str(folder)!r} is not a PEFT adapter (no adapter_config.json)")
    return folder


def export_hf_folder(target: str, out: str | Path) -> Path:
    """Dequantise a GGUF (a preset such as ``smollm2``, or a path) into a transformers model folder that TRL,
    PEFT and the ``hf`` backend load like any other."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, gguf_file = locate_hf_model(target)
    if gguf_file is None:
        raise BackendConfigError(f"{target!r} is already a transformers folder; nothing to export")
    out = Path(out)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)  # the weights are dequantised already
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


class HFBackend(Backend):
    def __init__(
        self,
        target: str,
        *,
        device: str | None = None,
        max_batch: int = 16,
        adapter: str | None = None,
        refill: bool = True,
        **options: Any,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        target, adapter = split_adapter(target, adapter)
        folder, gguf_file = locate_hf_model(target)
        adapter_folder = check_adapter(adapter) if adapter else None
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        extra = {"gguf_file": gguf_file} if gguf_file else {}
        self.tokenizer = AutoTokenizer.from_pretrained(folder, **extra)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **extra)
        model_id = f"hf:{folder / (gguf_file or '')}"
        if adapter_folder is not None:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, str(adapter_folder))
            model_id += f"#adapter={adapter_folder.resolve()}"
        self.model.to(self.device).eval()
        spec = f"hf:{target}" + (f"#adapter={adapter}" if adapter else "")
        self._setup(spec, model_id, max_batch, refill=refill, **options)

    @classmethod
    def from_model(
        cls, model: Any, tokenizer: Any, *, name: str, max_batch: int = 16, refill: bool = False, **options: Any
    ) -> HFBackend:
        """A backend over a model already in memory - a policy being trained - so generations use its current
        weights (nothing is copied; the caller keeps the model in the mode it needs)."""
        backend = cls.__new__(cls)
        backend.model, backend.tokenizer = model, tokenizer
        backend.device = str(next(model.parameters()).device)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        backend._setup(f"hf:{name}", f"hf:{name}:in-memory:{id(model)}", max_batch, refill=refill, **options)
        return backend

    def _setup(self, spec: str, model_id: str, max_batch: int, *, refill: bool, **options: Any) -> None:
        super().__init__(spec, model_id=model_id, **options)
        self.capabilities = Capabilities(
            chat=self.tokenizer.chat_template is not None,
            raw_prompt=True,
            logprobs=True,
            constraints=frozenset({"choice"}),  # by likelihood (backends/hf_choice.py)
            batching=True,
            continue_message=self.tokenizer.chat_template is not None,
        )
        self._end_tokens = {self.tokenizer.eos_token_id, *_as_list(self.model.generation_config.eos_token_id)}
        self._choice_lock = threading.Lock()
        self.generate_calls: list[int] = []
        """Requests per ``model.generate`` call, in order (what tests and benchmarks read)."""
        self.engine: RefillEngine | BatchThread
        if refill:  # our own decode loop: rows join and leave a running batch (backends/hf_engine.py)
            self.engine = RefillEngine(
                self.model, device=self.device, pad_token_id=self.tokenizer.pad_token_id, end_tokens=self._end_tokens,
                max_rows=max_batch, model_id=self.model_id, detokenizer=self.detokenizer,
            )  # fmt: skip
        else:  # padded model.generate batches of whatever arrived together
            self.engine = BatchThread(self._run_batch, max_batch=max_batch)
        weakref.finalize(self, self.engine.close)  # the engine thread keeps the engine alive

    @property
    def batch_sizes(self) -> list[int]:
        """Requests per batch handed to ``model.generate`` (``refill=False``; empty for the refill engine)."""
        return self.engine.batch_sizes if isinstance(self.engine, BatchThread) else []

    async def _generate(self, requests: list[Request]) -> list[Result]:
        chosen = {i for i, r in enumerate(requests) if r.constraint is not None and r.constraint.kind == "choice"}
        if not chosen:
            return await self._decode(requests)
        decoded = [i for i in range(len(requests)) if i not in chosen]
        order = [*decoded, *sorted(chosen)]
        answers = await asyncio.gather(
            self._decode([requests[i] for i in decoded]),
            *(asyncio.to_thread(self._choose, requests[i]) for i in sorted(chosen)),
        )
        by_index = dict(zip(order, [*answers[0], *answers[1:]], strict=True))
        return [by_index[i] for i in range(len(requests))]

    def _choose(self, request: Request) -> Result:
        """A choice-constrained request, answered by scoring its options (``backends/hf_choice.py``)."""
        started = time.perf_counter()
        prompt = self.prompt_ids(request)
        with self._choice_lock:  # one scoring pass at a time: on a CPU, concurrent passes only contend
            choices = choice_result_parts(
                request,
                tokens_of=lambda text: self.tokenizer(text, add_special_tokens=False)["input_ids"],
                scorer=lambda options: option_logprobs(self.model, prompt, options, self.tokenizer.pad_token_id,
                                                       self.device),
                seeds=[_row_seed(request, i) for i in range(request.n)],
                piece=lambda token: self.tokenizer.decode([token]),
            )  # fmt: skip
        usage = Usage(
            prompt_tokens=len(prompt),
            completion_tokens=sum(c.completion_tokens for c in choices),
            latency_seconds=time.perf_counter() - started,
        )
        return Result(choices=choices, usage=usage, model=self.model_id)

    async def _decode(self, requests: list[Request]) -> list[Result]:
        if not requests:
            return []
        if isinstance(self.engine, BatchThread):
            return await run_jobs(self.engine, requests, self.engine.job)

        def make_job(request: Request, stop: threading.Event, on_done: Callable[[Outcome], None]) -> HFJob:
            seeds = [_row_seed(request, i) for i in range(request.n)]
            return HFJob(request=request, prompt=self.prompt_ids(request), stop=stop, seeds=seeds, on_done=on_done)

        return await run_jobs(self.engine, requests, make_job)

    def close(self) -> None:
        self.engine.close()

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
            groups.setdefault(_batch_key(request), []).append(index)
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
        greedy = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        sampling: dict[str, Any] = greedy
        if any(r.temperature > 0 for r in requests):  # the processor samples; generate takes its choice
            rows = [(r, choice) for r in requests for choice in range(first.n)]
            sampler = PerRowSampler([r.temperature for r, _ in rows], [r.top_p for r, _ in rows],
                                    [_row_seed(r, choice) for r, choice in rows], self.device)  # fmt: skip
            # generate samples from the processor's one-hot scores: the row's own draw, with probability 1
            sampling = {"do_sample": True, "temperature": 1.0, "top_p": 1.0, "top_k": 0, "logits_processor": [sampler]}
        self.generate_calls.append(len(requests))
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                max_new_tokens=first.max_tokens,
                repetition_penalty=1.0,  # whatever the model's generation_config says: temperature and top_p only
                no_repeat_ngram_size=0,
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
        """A row ``generate`` produced, up to its first end token, cut by the request's stops."""
        length = next((k for k, token in enumerate(ids) if token in self._end_tokens), None)
        kept = ids[:length] if length is not None else ids
        detokenizer = self.detokenizer()
        pieces = [detokenizer.add(token) for token in kept]
        finish = "stop" if length is not None else "length"
        return CompletionText.replay(request, pieces, logprobs, finish_reason=finish)

    def detokenizer(self) -> IncrementalDetokenizer:
        return IncrementalDetokenizer(lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True))


def _batch_key(request: Request) -> tuple:
    """What one ``generate`` call cannot vary per row; sampling settings and seeds can differ."""
    return (request.max_tokens, request.min_tokens, request.stop, request.n)


def _row_seed(request: Request, choice: int) -> int:
    """The seed of one sampled row: from the request's seed and the choice index (n > 1), or fresh."""
    if request.seed is None:
        return int.from_bytes(os.urandom(4), "big")
    return int.from_bytes(hashlib.sha256(f"{request.seed}/{choice}".encode()).digest()[:8], "big") >> 1


class PerRowSampler:
    """A logits processor that samples each row with its own temperature, top_p and generator, and
    hands ``generate`` a one-hot choice. Rows at temperature 0 take the argmax."""

    def __init__(self, temperatures: list[float], top_ps: list[float], seeds: list[int], device: str) -> None:
        import torch

        self.temperatures, self.top_ps = temperatures, top_ps
        self.generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        settings = zip(self.temperatures, self.top_ps, self.generators, strict=True)
        picks = [sample_token(scores[row], temperature, top_p, generator) for row, (temperature, top_p, generator)
                 in enumerate(settings)]  # fmt: skip
        chosen = torch.tensor(picks, dtype=torch.long, device=scores.device)
        one_hot = torch.full_like(scores, -float("inf"))
        one_hot[torch.arange(scores.shape[0]), chosen] = 0.0
        return one_hot


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]
