"""Postgres pool saturation as Prometheus metrics, read from `ConnectionPool.get_stats()`.

A collector rather than gauges refreshed by a thread: the numbers are read at scrape time, so
they are never stale and cost nothing between scrapes. `get_stats()` (not `pop_stats()`) keeps
psycopg_pool's cumulative counters intact, so they export as real counters.

Wiring: call `register_pool_metrics(pool)` once after a process opens its pool (the API's
`ApiDeps.open`, `pipelines.engine.main.run_worker`); the metrics then appear on that process's
/metrics. The `PostgresPoolSaturated` alert in cluster/prometheus/alerts.yml reads them.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from clipforge.db.pool import Pool

# get_stats() key -> (metric name, help); gauges describe the pool right now.
_GAUGES = {
    "pool_max": ("clipforge_db_pool_max_connections", "Most connections the pool may open."),
    "pool_size": ("clipforge_db_pool_connections", "Connections open (in use or idle)."),
    "pool_available": ("clipforge_db_pool_idle_connections", "Open connections not in use."),
    "requests_waiting": (
        "clipforge_db_pool_waiting_requests",
        "Callers waiting for a connection (non-zero means the pool is saturated).",
    ),
}
# Cumulative since the pool opened; psycopg_pool omits a key until it is first non-zero.
_COUNTERS = {
    "requests_num": ("clipforge_db_pool_requests", "Connection requests served."),
    "requests_errors": (
        "clipforge_db_pool_request_errors",
        "Connection requests that failed (timed out waiting: DB_POOL_TIMEOUT_S).",
    ),
    "connections_errors": ("clipforge_db_pool_connect_errors", "Failed connection attempts."),
}


class PoolCollector(Collector):
    """Exports the stats of every registered, open pool, labelled by pool name."""

    def __init__(self) -> None:
        # Weak: a pool closed and dropped (tests, reconfiguration) leaves the metrics by itself.
        self._pools: weakref.WeakSet[Pool] = weakref.WeakSet()

    def add(self, pool: Pool) -> None:
        """Start exporting `pool`."""
        self._pools.add(pool)

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """One family per stat, one sample per pool, read now."""
        pools: dict[str, Pool] = {}
        for pool in list(self._pools):
            if not pool.closed:
                pools.setdefault(pool.name, pool)  # one sample per label set
        stats = {name: pool.get_stats() for name, pool in sorted(pools.items())}
        for key, (metric, doc) in _GAUGES.items():
            gauge = GaugeMetricFamily(metric, doc, labels=["pool"])
            for name, values in stats.items():
                gauge.add_metric([name], float(values.get(key, 0)))
            yield gauge
        for key, (metric, doc) in _COUNTERS.items():
            counter = CounterMetricFamily(metric, doc, labels=["pool"])
            for name, values in stats.items():
                counter.add_metric([name], float(values.get(key, 0)))
            yield counter


_collectors: dict[int, PoolCollector] = {}


def register_pool_metrics(pool: Pool, registry: CollectorRegistry = REGISTRY) -> PoolCollector:
    """Export `pool`'s stats from `registry` (the default one served on /metrics).

    Safe to call for many pools and many times: one collector per registry serves them all.
    """
    collector = _collectors.get(id(registry))
    if collector is None:
        collector = _collectors[id(registry)] = PoolCollector()
        registry.register(collector)
    collector.add(pool)
    return collector
