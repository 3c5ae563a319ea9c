"""`Batcher`, the model deployments' request batching, on a real event loop (no Ray needed).

The batch function sleeps like a model busy for a while; what is checked is how requests are
grouped: batches grow with the backlog up to the cap, a lone request does not wait out the
budget (even right after another one), requests arriving together do, and a failing batch
fails only its own requests.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from serve_apps.deployments.batching import BatchConfig, Batcher, BatchStats

BUSY_S = 0.05


def _batcher(sizes: list[int], *, max_batch_size: int = 8, budget_s: float = 0.02) -> Batcher:
    async def run(items: list[int]) -> list[int]:
        sizes.append(len(items))
        if -1 in items:
            raise ValueError("bad item")
        await asyncio.sleep(BUSY_S)  # the model is busy; requests pile up meanwhile
        return [item * 10 for item in items]

    config = BatchConfig(max_batch_size=max_batch_size, batch_wait_timeout_s=budget_s)
    return Batcher(run, BatchStats("test"), config)


def test_batches_grow_with_the_backlog_up_to_the_cap():
    sizes: list[int] = []

    async def client(batcher: Batcher, c: int) -> list[int]:
        await asyncio.sleep(c * 0.004)  # staggered arrivals, not in lockstep
        return [await batcher.submit(c * 100 + k) for k in range(5)]

    async def main() -> list[list[int]]:
        batcher = _batcher(sizes)
        return await asyncio.gather(*(client(batcher, c) for c in range(16)))

    answers = asyncio.run(main())

    assert answers == [[(c * 100 + k) * 10 for k in range(5)] for c in range(16)]
    assert sum(sizes) == 80 and max(sizes) == 8
    # 16 clients, one batch at a time: all but the first few batches are full.
    assert sum(sizes) / len(sizes) >= 6, sizes


def test_a_lone_request_runs_at_once_and_close_arrivals_wait_for_each_other():
    sizes: list[int] = []

    async def main() -> tuple[float, list[int]]:
        batcher = _batcher(sizes, budget_s=0.5)
        alone = 0.0
        # One client, one request at a time: each arrives 50 ms after the one before it, well
        # inside the budget, but finds nothing else queued, so nothing is worth waiting for.
        for k in range(3):
            started = time.monotonic()
            assert await batcher.submit(k) == k * 10
            alone = max(alone, time.monotonic() - started)
        sizes.clear()

        async def later(item: int, delay: float) -> int:
            await asyncio.sleep(delay)
            return await batcher.submit(item)

        # The first of a burst finds the model idle after a quiet spell and runs at once; the
        # rest arrive 20 ms apart, well inside the 0.5 s budget, and wait for each other.
        together = await asyncio.gather(*(later(k, 0.6 + 0.02 * k) for k in range(4)))
        return alone, together

    alone, together = asyncio.run(main())

    assert alone < 0.25, f"a lone request waited for companions ({alone:.3f} s)"
    assert together == [0, 10, 20, 30]
    assert sizes == [1, 3]


def test_a_failing_batch_fails_its_own_requests_only_and_config_changes_apply():
    sizes: list[int] = []

    async def main() -> list[int | BaseException]:
        batcher = _batcher(sizes, max_batch_size=2, budget_s=0.05)
        first = await asyncio.gather(
            batcher.submit(-1), batcher.submit(1), batcher.submit(2), return_exceptions=True
        )
        batcher.configure({"max_batch_size": 4, "batch_wait_timeout_s": 0.05})
        second = await asyncio.gather(*(batcher.submit(k) for k in range(4)))
        return [*first, *second]

    answers = asyncio.run(main())

    assert isinstance(answers[0], ValueError) and isinstance(answers[1], ValueError)
    assert answers[2:] == [20, 0, 10, 20, 30]
    assert sizes == [2, 1, 4]
    with pytest.raises(ValueError):
        BatchConfig.model_validate({"max_batch_size": 0})
