"""Wake jobs delayed by an outage as soon as their dependency answers again.

A job deferred for a dependency sleeps out a backoff that grows with the outage (up to
QUEUE_DEPENDENCY_BACKOFF_MAX_S, 5 min): without a wake-up the last jobs of a long outage start
minutes after the dependency came back. `DependencyWaker` probes, every
QUEUE_DEPENDENCY_PROBE_S, only the dependencies queued jobs are waiting on; when one answers, its
waiting jobs become runnable now, staggered at QUEUE_WAKE_PER_S per second so a large backlog
returns as a bounded stream rather than a herd that knocks the dependency over again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from clipforge.db.pool import Pool
from clipforge.db.repo.jobs import waiting_dependencies, wake_waiting
from clipforge.metrics import JOBS_WOKEN
from clipforge.resilience import OutageLog, dependency_of

log = logging.getLogger(__name__)
# A probe returns if the dependency answers and raises if it does not.
Probe = Callable[[], None]


class DependencyWaker:
    """Probes the dependencies delayed jobs wait on; wakes those jobs when one is back.

    `probes` maps a dependency name (as `clipforge.resilience.dependency_of` gives it) to its
    probe; jobs waiting on a dependency without a probe (e.g. `network`) keep their backoff.
    Postgres needs none: reading the waiting jobs is the probe.
    """

    def __init__(
        self,
        pool: Pool,
        probes: Mapping[str, Probe],
        *,
        interval_s: float,
        per_s: float,
        stop: threading.Event | None = None,
    ) -> None:
        self._pool = pool
        self._probes = dict(probes)
        self.interval_s = interval_s
        self.per_s = per_s
        self._outages = OutageLog(
            log,
            down="dependency probe: {dependency} still unavailable",
            up="dependency probe: {dependency} is back",
        )
        self.stop = stop or threading.Event()

    def run(self) -> None:
        """Probe and wake every `interval_s` until `stop` is set; never raises."""
        while not self.stop.wait(self.interval_s):
            self.run_once()

    def run_once(self) -> int:
        """One round: returns the number of jobs woken."""
        try:
            with self._pool.connection() as conn:
                waiting = waiting_dependencies(conn)
        except Exception as exc:  # Postgres away: the runners wait it out, so do we
            self._outages.down(dependency_of(exc) or "postgres", exc)
            return 0
        self._outages.up("postgres")
        woken = 0
        for dependency in waiting:
            probe = self._probes.get(
                dependency, _postgres_probe if dependency == "postgres" else None
            )
            if probe is None:
                continue
            try:
                probe()
            except Exception as exc:  # still down: the jobs keep sleeping
                self._outages.down(dependency, exc)
                continue
            self._outages.up(dependency)
            woken += self._wake(dependency)
        return woken

    def _wake(self, dependency: str) -> int:
        try:
            with self._pool.connection() as conn, conn.transaction():
                count = wake_waiting(conn, dependency=dependency, per_s=self.per_s)
        except Exception:  # the next round tries again
            log.warning("could not wake delayed jobs", exc_info=True)
            return 0
        if count:
            JOBS_WOKEN.labels(dependency=dependency).inc(count)
            log.info(
                "dependency back; delayed jobs woken",
                extra={"dependency": dependency, "jobs": count, "per_s": self.per_s},
            )
        return count


def _postgres_probe() -> None:
    """Reading the waiting jobs already reached Postgres."""
