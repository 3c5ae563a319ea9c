"""Ray's own telemetry and warm-up, which no test reads, turned off for every Ray a test session
starts (tests/conftest.py puts `RAY_QUIET_ENV` in the environment before anything starts).

An idle local Ray cost 3.0-3.8 CPU s a minute here, 1.9-2.1 with these (benchmarks/ray_idle.py);
the suite runs three session Rays for its whole length beside about twenty short ones (CLI
commands, `ray start` clusters, notebooks), on two cores that are busy all along. What each stops:
- metrics: the agents' Prometheus exporters (the tests scrape ClipForge's metrics, not Ray's);
- prestarted workers: a worker per CPU started when a driver connects, importing Ray, then
  mostly left idle (actors start their own);
- task events and event stats: reports to the GCS for the state API's task list and the
  dashboard, every second from every worker (`list_actors` reads the actor table instead);
- the log monitor's file scan ten times a second: with no size threshold it rescans every 0.5 s
  (the logs still reach a driver that asks for them).
"""

from __future__ import annotations

RAY_QUIET_ENV = {
    "RAY_enable_metrics_collection": "0",
    "RAY_metrics_report_interval_ms": "60000",
    "RAY_prestart_worker_first_driver": "0",
    "RAY_task_events_report_interval_ms": "10000",
    "RAY_event_stats": "0",
    "RAY_LOG_MONITOR_MANY_FILES_THRESHOLD": "0",
}
