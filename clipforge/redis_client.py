"""The process's Redis client: pooled (at most 10 connections) with short timeouts.

Redis is a cache here, never the system of record, so calls time out fast and callers
degrade to Postgres rather than wait.
"""

from __future__ import annotations

import redis

from clipforge.settings import Settings


def create_redis(settings: Settings, url: str | None = None) -> redis.Redis | None:
    """A client for REDIS_URL (or `url`), or None when Redis is not configured."""
    target = url or settings.redis_url
    if not target:
        return None
    pool = redis.BlockingConnectionPool.from_url(
        target,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_socket_timeout_s,
        socket_timeout=settings.redis_socket_timeout_s,
        socket_connect_timeout=settings.redis_socket_timeout_s,
        health_check_interval=30,
    )
    return redis.Redis(connection_pool=pool)
