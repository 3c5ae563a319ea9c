"""JSON log lines carry request/job ids and extra fields."""

from __future__ import annotations

import json
import logging

from clipforge.logging import JsonFormatter, job_context, request_context


def test_json_lines_carry_context_ids_and_extras() -> None:
    record_lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            record_lines.append(JsonFormatter().format(record))

    logger = logging.getLogger("clipforge.test")
    logger.addHandler(Capture())
    logger.setLevel(logging.INFO)
    with request_context("req-1"), job_context(42):
        logger.info("stage done", extra={"stage": "transcribe", "seconds": 1.5})
    logger.info("outside")
    inside, outside = (json.loads(line) for line in record_lines)
    assert inside["msg"] == "stage done" and inside["level"] == "info"
    assert inside["request_id"] == "req-1" and inside["job_id"] == 42
    assert inside["stage"] == "transcribe" and inside["seconds"] == 1.5
    assert "request_id" not in outside and "job_id" not in outside
