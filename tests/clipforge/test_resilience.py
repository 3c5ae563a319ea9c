"""The circuit breaker, and which dependency a failure names."""

from __future__ import annotations

import time

import pytest

from clipforge.errors import CircuitOpen
from clipforge.resilience import CircuitBreaker, dependency_of
from tests.utils.wait import wait_until


def test_breaker_opens_fails_fast_then_half_opens_and_closes() -> None:
    breaker = CircuitBreaker("dep", failure_threshold=2, reset_after_s=0.2)
    calls: list[int] = []

    def down() -> None:
        calls.append(1)
        raise ConnectionError("down")

    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(down)
    opened = time.monotonic()
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        breaker.call(down)
    assert len(calls) == 2  # the open breaker did not call the dependency
    wait_until(lambda: breaker.state == "half-open", timeout_s=5, interval_s=0.02)
    assert time.monotonic() - opened >= 0.2  # not before reset_after_s
    with pytest.raises(ConnectionError):
        breaker.call(down)  # the trial call fails: open again
    assert breaker.state == "open"
    wait_until(lambda: breaker.state == "half-open", timeout_s=5, interval_s=0.02)
    assert breaker.call(lambda: "back") == "back"
    assert breaker.state == "closed"


def test_breaker_ignores_errors_that_are_not_outages() -> None:
    breaker = CircuitBreaker(
        "s3", failure_threshold=1, is_failure=lambda e: not isinstance(e, KeyError)
    )
    for _ in range(3):
        with pytest.raises(KeyError):
            breaker.call(lambda: {}["missing"])
    assert breaker.state == "closed"


def test_redis_outages_are_named() -> None:
    """Redis's connection errors name Redis (resilience.py looks its types up once redis is
    loaded: tests/pipelines/test_actor_imports.py checks that stage actors do not load it)."""
    import redis

    assert dependency_of(redis.ConnectionError("Connection refused")) == "redis"
    assert dependency_of(redis.TimeoutError("Timeout reading from socket")) == "redis"
    assert dependency_of(redis.ResponseError("WRONGTYPE")) is None  # the command's own fault
