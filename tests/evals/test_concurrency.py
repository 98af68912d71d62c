"""The eval runner's in-flight level, found while it runs: up while a batching server gets faster, back to one
when a one-at-a-time server slows down under queued requests. Simulated servers with known curves."""

from __future__ import annotations

import asyncio
import random
import time

from thoughtgraph.evals.concurrency import AdaptiveConcurrency

STEP = 0.002


class SharedServer:
    """A simulated server whose total speed depends on how many requests it holds, ``capacity(n)`` tokens/s,
    shared evenly among them: each request speeds up and slows down as others come and go, as on a batching
    engine or a server whose threads share the cores. ``cold`` seconds are added to the first request."""

    def __init__(self, capacity, cold: float = 0.0) -> None:
        self.capacity, self.cold = capacity, cold
        self.work: dict[asyncio.Future, float] = {}
        self.ticking: asyncio.Task | None = None
        self.requests = 0

    async def generate(self, tokens: int) -> None:
        self.requests += 1
        if self.requests == 1 and self.cold:
            await asyncio.sleep(self.cold)
        done = asyncio.get_running_loop().create_future()
        self.work[done] = float(tokens)
        if self.ticking is None or self.ticking.done():
            self.ticking = asyncio.create_task(self._tick())
        await done

    async def _tick(self) -> None:
        last = time.perf_counter()
        while self.work:
            await asyncio.sleep(STEP)
            now = time.perf_counter()
            share = self.capacity(len(self.work)) / len(self.work) * (now - last)
            last = now
            for done in list(self.work):
                self.work[done] -= share
                if self.work[done] <= 0:
                    del self.work[done]
                    done.set_result(None)


async def simulate(capacity, jobs: int = 80, started_at=None, tokens_of=lambda job: 10, cold=0.0):
    gate, server = AdaptiveConcurrency(), SharedServer(capacity, cold)

    async def job(index: int) -> None:
        async with gate:
            if started_at is not None:
                started_at.append(gate.limit)
            entered = time.perf_counter()
            await server.generate(tokens_of(index))
            seconds = time.perf_counter() - entered
        await gate.done(tokens_of(index), seconds)

    await asyncio.gather(*(job(i) for i in range(jobs)))
    return gate


ONE = 333.0
"""Tokens/s of one request alone: 10 tokens in 0.03 s."""


async def test_a_server_that_batches_four_is_driven_to_four_in_flight():
    # up to 4 requests run at full speed together; more share a tenth less (an oversubscribed server loses some)
    gate = await simulate(lambda n: ONE * 4 * (0.9 if n > 4 else n / 4))
    assert gate.settled and gate.limit == 4
    assert [limit for limit, _ in gate.levels] == [1, 2, 3, 4, 5]  # 5 was no faster than 4: back to 4
    assert gate.report()["final"] == 4 and gate.report()["mode"] == "adaptive"


async def test_chains_of_very_different_lengths_do_not_stop_the_climb_early():
    # the same server, but problems of 20 to 256 tokens: which ones land in a window of four to eight completions
    # swings tokens per second of the window's clock by 2x and more, while each completion's tokens over its own
    # time stay what the level gives
    lengths = random.Random(7).choices([20, 40, 256], k=120)
    gate = await simulate(lambda n: 3 * ONE * 4 * (0.9 if n > 4 else n / 4), jobs=120, tokens_of=lambda i: lengths[i])
    assert gate.settled and gate.limit == 4
    assert [limit for limit, _ in gate.levels] == [1, 2, 3, 4, 5]


async def test_a_one_at_a_time_server_that_slows_under_a_queue_stays_at_one():
    # requests compete for the server's cores: two at once give 1/1.4 of one's total
    gate = await simulate(lambda n: ONE / n**0.5)
    assert gate.settled and gate.limit == 1 and [limit for limit, _ in gate.levels] == [1, 2]


async def test_a_level_far_slower_is_given_up_after_one_round():
    # two at once give a quarter of one's total: given up after the round's two completions, before its window
    # of four (one more may enter as the first of them finishes)
    started_at = []
    gate = await simulate(lambda n: ONE / n**2, started_at=started_at)
    assert gate.limit == 1 and [limit for limit, _ in gate.levels] == [1, 2]
    assert started_at.count(2) <= 3
    # half of one's total (1/2 < 1/1.5): also given up after one round
    started_at = []
    gate = await simulate(lambda n: ONE / n, started_at=started_at)
    assert gate.limit == 1 and [limit for limit, _ in gate.levels] == [1, 2]
    assert started_at.count(2) <= 3
    # somewhat slower (1/1.2 of one's total): judged over the whole window of four
    started_at = []
    gate = await simulate(lambda n: ONE / 1.2 ** (n - 1), started_at=started_at)
    assert gate.limit == 1 and started_at.count(2) >= 4


async def test_a_slow_first_request_does_not_lower_the_baseline():
    # a cold server: the first request takes 0.3 s more. Counted, it would put level 1 at 20 tokens / 0.36 s = 56
    # tokens/s and every later level would look better; it is a warm-up, so level 1 measures about 333 tokens/s
    # and level 2 (half the total) is given up after its first round
    gate = await simulate(lambda n: ONE / n, cold=0.3)
    assert gate.limit == 1 and [limit for limit, _ in gate.levels] == [1, 2]
    assert gate.levels[0][1] > 250  # the warm-up left out: 10 tokens per 0.03 s, less the event loop's overhead


async def test_completions_that_entered_under_an_earlier_level_are_not_counted_for_the_next():
    gate = AdaptiveConcurrency(window=2)
    async with gate:  # the warm-up
        pass
    await gate.done(10, 0.1)

    async def measured(tokens: int, seconds: float) -> None:
        async with gate:
            pass
        await gate.done(tokens, seconds)

    await measured(10, 0.1)
    await measured(10, 0.1)  # level 1: 10 tokens per 0.1 s, 100 tokens/s: one more in flight
    assert gate.limit == 2 and gate.levels == [(1, 100.0)]
    await measured(100, 0.1)
    async with gate:  # one more under level 2: its done() comes only after level 3 has begun
        pass
    await measured(100, 0.1)  # level 2: 2 x 100 tokens per 0.1 s = 2000 tokens/s: up again
    assert gate.limit == 3
    await gate.done(1, 10.0)  # the late one, entered under level 2: 0.1 tokens/s, left out of level 3
    await measured(100, 0.1)
    await measured(100, 0.1)  # level 3 alone: 3 x 200 tokens per 0.2 s = 3000 tokens/s; counted, the late
    # completion would have made it 3 x 201 / 10.2 s = 59 tokens/s, far slower, and ended the climb
    assert gate.levels[-1] == (3, 3000.0) and gate.limit == 4 and not gate.settled


async def test_the_gate_never_lets_more_than_its_limit_through():
    gate, in_flight, most, highest_limit = AdaptiveConcurrency(), 0, 0, 1

    async def job() -> None:
        nonlocal in_flight, most, highest_limit
        async with gate:
            in_flight += 1
            most = max(most, in_flight)
            highest_limit = max(highest_limit, gate.limit)  # a settling move down leaves the ones in flight running
            assert in_flight <= highest_limit
            await asyncio.sleep(0.005)
            in_flight -= 1
        await gate.done(1, 0.005)

    await asyncio.gather(*(job() for _ in range(30)))
    assert most >= 2  # it did climb
