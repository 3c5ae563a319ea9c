"""Retries with exponential backoff + jitter, and circuit breakers, for calls to dependencies.

Retries ride out blips; the breaker stops a hard outage from turning every request into a slow
timeout: after `failure_threshold` consecutive failures it fails fast for `reset_after_s`, then
lets one trial call through (half-open) to see whether the dependency is back.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from clipforge.errors import CircuitOpen
from clipforge.metrics import BREAKER_STATE, RETRIES

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry.

    Attributes:
        attempts: total tries including the first.
        base_s: delay before the second try (before jitter).
        cap_s: largest delay between tries.
        retry_on: exception types worth another try; anything else propagates at once.
    """

    attempts: int = 3
    base_s: float = 0.1
    cap_s: float = 2.0
    retry_on: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, OSError)


def retry_call(fn: Callable[[], T], *, policy: RetryPolicy, operation: str) -> T:
    """Call `fn`, retrying `policy.retry_on` errors with full-jitter exponential backoff."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn()
        except policy.retry_on as exc:
            if attempt == policy.attempts or isinstance(exc, CircuitOpen):
                raise
            delay = random.uniform(0, min(policy.cap_s, policy.base_s * 2 ** (attempt - 1)))
            RETRIES.labels(operation=operation).inc()
            log.info(
                "retrying", extra={"operation": operation, "attempt": attempt, "error": repr(exc)}
            )
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


class CircuitBreaker:
    """Thread-safe closed / open / half-open breaker."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_after_s: float = 10.0,
        is_failure: Callable[[Exception], bool] = lambda exc: True,
    ) -> None:
        self.name = name
        # Errors that say nothing about the dependency's health (a 404, say) don't trip it.
        self.is_failure = is_failure
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False
        self._lock = threading.Lock()
        BREAKER_STATE.labels(breaker=name).set(0)

    @property
    def state(self) -> str:
        """`closed`, `open` or `half-open`."""
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if time.monotonic() - self._opened_at >= self.reset_after_s:
                return "half-open"
            return "open"

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` through the breaker; raise `CircuitOpen` without calling it while open."""
        self._before()
        try:
            result = fn()
        except Exception as exc:
            if self.is_failure(exc):
                self._on_failure()
            else:
                self._on_success()
            raise
        self._on_success()
        return result

    def _before(self) -> None:
        with self._lock:
            if self._opened_at is None:
                return
            cooled = time.monotonic() - self._opened_at >= self.reset_after_s
            if cooled and not self._trial_in_flight:
                self._trial_in_flight = True  # exactly one probe call while half-open
                return
            raise CircuitOpen(f"{self.name} is unavailable (circuit open)")

    def _on_failure(self) -> None:
        with self._lock:
            self._failures += 1
            self._trial_in_flight = False
            if self._opened_at is not None or self._failures >= self.failure_threshold:
                if self._opened_at is None:
                    log.warning("circuit opened", extra={"breaker": self.name})
                self._opened_at = time.monotonic()
                BREAKER_STATE.labels(breaker=self.name).set(1)

    def _on_success(self) -> None:
        with self._lock:
            if self._opened_at is not None:
                log.info("circuit closed", extra={"breaker": self.name})
            self._failures = 0
            self._opened_at = None
            self._trial_in_flight = False
            BREAKER_STATE.labels(breaker=self.name).set(0)
