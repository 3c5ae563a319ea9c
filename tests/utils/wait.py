"""Waiting on a condition in tests, instead of sleeping for a fixed time.

A fixed sleep is either too short on a busy machine (the test fails) or too long on a quiet one
(the suite is slow). `wait_until` polls a condition and returns as soon as it holds, with a
deadline that only a broken run reaches.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    *,
    timeout_s: float,
    interval_s: float = 0.05,
    what: str | Callable[[], object] = "the condition",
) -> T:
    """Call `condition` every `interval_s` until it returns something truthy, and return that.

    Fails the test (AssertionError) when `timeout_s` passes first; `what` names the condition
    in that message, or is called then for a diagnosis (a log tail, the rows it waited on). The
    condition may itself assert, to fail at once (a process that exited, say)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = what() if callable(what) else what
            raise AssertionError(f"still waiting after {timeout_s:g} s: {detail}")
        time.sleep(interval_s)
