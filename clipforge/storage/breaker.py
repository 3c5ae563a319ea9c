"""Circuit breakers shared by every storage client of one process.

A breaker only helps if it sees consecutive failures: one per client object would start closed
again for each row a stage handles, so a dead S3 would cost every row its full retry budget.
Every `S3Store` of a process therefore takes its breaker from here, keyed by dependency and
endpoint, and Ray stage actors report the states back to the driver (`breaker_states`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from clipforge.resilience import CircuitBreaker

_lock = threading.Lock()
_breakers: dict[tuple[str, str], CircuitBreaker] = {}


def shared_breaker(
    name: str, *, scope: str = "", is_failure: Callable[[Exception], bool] = lambda exc: True
) -> CircuitBreaker:
    """The process-wide breaker for dependency `name` at `scope` (e.g. an endpoint URL)."""
    with _lock:
        breaker = _breakers.get((name, scope))
        if breaker is None:
            breaker = CircuitBreaker(name, is_failure=is_failure)
            _breakers[(name, scope)] = breaker
        return breaker


def breaker_states() -> dict[str, bool]:
    """Per dependency name: True while any of this process's breakers for it is open."""
    with _lock:
        items = list(_breakers.items())
    states: dict[str, bool] = {}
    for (name, _), breaker in items:
        states[name] = states.get(name, False) or breaker.state != "closed"
    return states
