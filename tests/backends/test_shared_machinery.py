"""Ledger, persistent cache, retries and coalescing, checked through small backends."""

import asyncio
import threading

import pytest

from thoughtgraph.backends import (
    Backend,
    BackendError,
    BackendUnavailableError,
    Capabilities,
    CapabilityError,
    Choice,
    Constraint,
    Request,
    RequestCache,
    Result,
    RetryPolicy,
    TransientBackendError,
    Usage,
    UsageLedger,
)
from thoughtgraph.backends.batch_thread import BatchThread
from thoughtgraph.backends.engine_thread import run_jobs
from thoughtgraph.backends.scripted import ScriptedBackend, ScriptRule


class FlakyBackend(Backend):
    """Fails with a transient error a set number of times, then answers."""

    capabilities = Capabilities()

    def __init__(self, failures: int, **options):
        super().__init__("flaky:test", "flaky", **options)
        self.failures = failures
        self.attempts = 0

    async def _generate(self, requests):
        self.attempts += 1
        if self.attempts <= self.failures:
            raise TransientBackendError("connection reset by peer")
        return [Result([Choice("ok", "stop", 1)], Usage(prompt_tokens=2, completion_tokens=1)) for _ in requests]


FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff_seconds=0.001, max_backoff_seconds=0.002)


async def test_nested_ledgers_both_count_every_call_and_match_results():
    backend = ScriptedBackend([ScriptRule("q", ["one two three"])])
    with UsageLedger() as outer:
        first = await backend.generate_one(Request(prompt="q"))
        with UsageLedger() as inner:
            second = await backend.generate_one(Request(prompt="q q", n=2))
    assert inner.calls == 1
    assert inner.completion_tokens == second.usage.completion_tokens == 6
    assert outer.calls == 2
    assert outer.prompt_tokens == first.usage.prompt_tokens + second.usage.prompt_tokens == 3
    assert outer.completion_tokens == 9
    assert outer.wall_seconds >= inner.wall_seconds > 0


async def test_ledger_follows_concurrent_tasks_started_inside_it():
    backend = ScriptedBackend(default="a b")
    with UsageLedger() as ledger:
        await asyncio.gather(*(backend.generate_one(Request(prompt=f"p{i}")) for i in range(5)))
    assert ledger.calls == 5
    assert ledger.completion_tokens == 10


async def test_cache_returns_identical_results_without_calling_the_engine(tmp_path):
    cache = RequestCache(tmp_path / "cache.sqlite")
    backend = ScriptedBackend([ScriptRule("q", ["first", "second"])], cache=cache)
    request = Request(prompt="q", logprobs=True)
    fresh = await backend.generate_one(request)
    with UsageLedger() as ledger:
        again = await backend.generate_one(request)
    assert backend.engine_calls == 1  # the double would have answered "second"
    assert again.choices == fresh.choices
    assert again.usage.from_cache and ledger.cache_hits == 1
    assert ledger.completion_tokens == fresh.usage.completion_tokens  # cost is reported, not hidden


async def test_cache_survives_reopening_and_skips_unseeded_samples(tmp_path):
    path = tmp_path / "cache.sqlite"
    first = ScriptedBackend(default="x", cache=RequestCache(path))
    await first.generate_one(Request(prompt="q", temperature=0.7, seed=5))
    await first.generate_one(Request(prompt="q", temperature=0.7))  # no seed: not cached
    reopened = RequestCache(path)
    assert len(reopened) == 1
    second = ScriptedBackend(default="y", cache=reopened)
    assert (await second.generate_one(Request(prompt="q", temperature=0.7, seed=5))).text == "x"
    assert (await second.generate_one(Request(prompt="q", temperature=0.7))).text == "y"


async def test_transient_failures_are_retried_and_counted():
    backend = FlakyBackend(failures=2, retry=FAST_RETRY)
    with UsageLedger() as ledger:
        result = await backend.generate_one(Request(prompt="x"))
    assert result.text == "ok"
    assert backend.attempts == 3
    assert ledger.events["retry"] == 2


async def test_retries_give_up_with_an_error_naming_backend_attempts_and_cause():
    backend = FlakyBackend(failures=10, retry=FAST_RETRY)
    with pytest.raises(BackendUnavailableError) as caught:
        await backend.generate_one(Request(prompt="x"))
    assert caught.value.attempts == 3
    assert "flaky:test" in str(caught.value)
    assert "after 3 attempts" in str(caught.value)
    assert "connection reset by peer" in str(caught.value)


async def test_a_hung_attempt_times_out_and_is_retried():
    class HangsOnce(FlakyBackend):
        async def _generate(self, requests):
            self.attempts += 1
            if self.attempts == 1:
                await asyncio.sleep(10)
            return [Result([Choice("ok", "stop", 1)]) for _ in requests]

    backend = HangsOnce(
        failures=0, retry=RetryPolicy(max_attempts=2, initial_backoff_seconds=0.001, timeout_seconds=0.05)
    )
    assert (await backend.generate_one(Request(prompt="x"))).text == "ok"
    assert backend.attempts == 2


async def test_capabilities_are_checked_before_any_engine_work():
    class NoLogprobs(FlakyBackend):
        capabilities = Capabilities(logprobs=False, constraints=frozenset({"json_schema"}))

    backend = NoLogprobs(failures=0)
    with pytest.raises(CapabilityError, match="cannot return token logprobs"):
        await backend.generate_one(Request(prompt="x", logprobs=True))
    with pytest.raises(CapabilityError, match="cannot constrain output by regex"):
        await backend.generate_one(Request(prompt="x", constraint=Constraint.regex("a+")))
    with pytest.raises(CapabilityError, match="cannot return token logprobs"):
        backend.require(logprobs=True)
    assert backend.attempts == 0


async def test_a_batch_engine_gets_concurrent_requests_as_one_batch():
    seen: list[list[str]] = []

    gate = threading.Event()

    def run_batch(requests):
        seen.append([r.prompt for r in requests])
        gate.wait(10)  # the engine is busy with the first batch while the eight requests arrive
        return [Result([Choice(r.prompt.upper(), "stop", 1)]) for r in requests]

    engine = BatchThread(run_batch, max_batch=8)
    first = asyncio.ensure_future(run_jobs(engine, [Request(prompt="busy")], engine.job))
    while not seen:
        await asyncio.sleep(0.001)
    calls = [asyncio.ensure_future(run_jobs(engine, [Request(prompt=f"p{i}")], engine.job)) for i in range(8)]
    await asyncio.sleep(0.05)  # every request is handed to the engine thread
    gate.set()
    results = await asyncio.gather(first, *calls)
    assert [r[0].text for r in results[1:]] == [f"P{i}" for i in range(8)]  # each caller gets its own answer
    assert seen == [["busy"], [f"p{i}" for i in range(8)]]
    engine.close()


async def test_a_batch_engine_respects_max_batch_and_reports_an_error_to_that_batch_only():
    def run_batch(requests):
        if any(r.prompt == "boom" for r in requests):
            raise RuntimeError("engine crashed")
        return [Result([Choice("ok", "stop", 1)]) for _ in requests]

    engine = BatchThread(run_batch, max_batch=3)
    await asyncio.gather(*(run_jobs(engine, [Request(prompt="x")], engine.job) for _ in range(7)))
    assert max(engine.batch_sizes) == 3 and sum(engine.batch_sizes) == 7
    with pytest.raises(RuntimeError, match="engine crashed"):
        await run_jobs(engine, [Request(prompt="boom"), Request(prompt="x")], engine.job)
    assert (await run_jobs(engine, [Request(prompt="x")], engine.job))[0].text == "ok"  # the engine goes on
    engine.close()
    with pytest.raises(BackendError, match="is closed"):
        await run_jobs(engine, [Request(prompt="x")], engine.job)


async def test_a_request_cancelled_before_its_batch_starts_is_not_run_and_owes_nothing():
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def run_batch(requests):
        ran.extend(r.prompt for r in requests)
        started.set()
        release.wait(5)
        return [Result([Choice("ok", "stop", 1)], Usage(prompt_tokens=2, completion_tokens=1)) for _ in requests]

    engine = BatchThread(run_batch, max_batch=1, window_seconds=0)
    with UsageLedger() as ledger:
        first = asyncio.create_task(run_jobs(engine, [Request(prompt="first")], engine.job))
        await asyncio.to_thread(started.wait, 5)
        second = asyncio.create_task(run_jobs(engine, [Request(prompt="second")], engine.job))
        await asyncio.sleep(0.01)
        second.cancel()
        await asyncio.wait([second], timeout=5)  # the cancellation has reached the job before the engine is free
        release.set()
        assert (await first)[0].text == "ok"
        with pytest.raises(asyncio.CancelledError):
            await second
        await ledger.settle(5)
        assert not ledger.pending  # the cancelled request is settled, not waited for
    assert ran == ["first"]  # it never reached the engine
    assert ledger.calls == 0  # run_jobs leaves recording to its caller (Backend.generate) for delivered results
    engine.close()


def test_generate_sync_works_repeatedly_and_refuses_a_running_loop():
    backend = ScriptedBackend(default="fine")
    assert backend.generate_sync([Request(prompt="a")])[0].text == "fine"
    assert backend.generate_sync([Request(prompt="b")])[0].text == "fine"

    async def inside():
        backend.generate_sync([Request(prompt="c")])

    with pytest.raises(RuntimeError, match="inside a running event loop"):
        asyncio.run(inside())


class WholeTextBackend(Backend):
    """An engine that returns whole replies and cannot stop on the text (as a remote server without streaming)."""

    capabilities = Capabilities()

    def __init__(self, text: str):
        super().__init__("whole:test", "whole")
        self.text = text

    async def _generate(self, requests):
        return [
            Result([Choice(self.text, "length", 50)], Usage(prompt_tokens=2, completion_tokens=50)) for _ in requests
        ]


async def test_a_whole_reply_is_cut_at_a_repeat_or_a_stop_pattern_and_billed_whole():
    sentence = "We add the apples in both baskets to get the total."  # 51 characters
    text = f"{sentence}\nSo 3 + 4 = 7.\n{sentence}"
    repeat = (await WholeTextBackend(text).generate([Request(prompt="p", stop_repeated_sentence=40)]))[0]
    assert (repeat.text, repeat.choices[0].finish_reason) == (text.rsplit("\n", 1)[0], "repetition")
    assert repeat.choices[0].completion_tokens == 50  # what the engine produced is billed
    pattern = (await WholeTextBackend(text).generate([Request(prompt="p", stop_pattern=r"= 7\.")]))[0]
    assert pattern.text == "We add the apples in both baskets to get the total.\nSo 3 + 4 = 7."
    untouched = (await WholeTextBackend(text).generate([Request(prompt="p")]))[0]
    assert untouched.text == text and untouched.choices[0].finish_reason == "length"
