"""clipforge.db.pool_metrics reports a real pool's use and waiting callers at scrape time."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry

from clipforge.db.pool import create_pool
from clipforge.db.pool_metrics import register_pool_metrics
from clipforge.settings import Settings


def _value(registry: CollectorRegistry, name: str) -> float:
    value = registry.get_sample_value(name, {"pool": "pool-metrics-test"})
    assert value is not None, name
    return value


def test_in_use_idle_and_waiting_follow_the_pool(settings: Settings, database_url: str) -> None:
    registry = CollectorRegistry()
    with create_pool(
        settings, database_url, application_name="pool-metrics-test", min_size=1, max_size=1
    ) as pool:
        register_pool_metrics(pool, registry)
        assert _value(registry, "clipforge_db_pool_max_connections") == 1
        assert _value(registry, "clipforge_db_pool_idle_connections") == 1
        served = threading.Event()

        def second_caller() -> None:
            with pool.connection(timeout=5):
                served.set()

        with pool.connection():
            assert _value(registry, "clipforge_db_pool_idle_connections") == 0
            waiter = threading.Thread(target=second_caller)
            waiter.start()
            for _ in range(100):  # the second caller queues behind the only connection
                if _value(registry, "clipforge_db_pool_waiting_requests") == 1:
                    break
                served.wait(0.02)
            assert _value(registry, "clipforge_db_pool_waiting_requests") == 1
        waiter.join(timeout=5)
        assert served.is_set()
        assert _value(registry, "clipforge_db_pool_waiting_requests") == 0
        assert _value(registry, "clipforge_db_pool_requests_total") >= 2
