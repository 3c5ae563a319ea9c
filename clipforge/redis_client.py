"""The process's Redis client: one server (REDIS_URL) or a Redis Cluster (REDIS_CLUSTER_URL).

Redis is a cache here, never the system of record, so calls time out fast and callers
degrade to Postgres rather than wait. Both shapes keep that:
- one server: a blocking pool of at most REDIS_MAX_CONNECTIONS connections;
- a cluster: redis-py's cluster client with at most REDIS_MAX_CONNECTIONS connections per node
  (and as many commands in flight per client: callers queue for a connection up to the socket
  timeout, as with one server) and **no command retries**. redis-py retries a failed cluster
  command up to 10 times by default, refreshing its slot map in between, which turns one hung
  master into a stall of 11 socket timeouts per call; here a failed call fails at once (the
  caller degrades: a cache miss goes to Postgres, the limiter lets the request through) while
  the client still refreshes its slot map on that error, so the next call goes to whichever
  node then owns the slot. A client built while no node answers starts anyway and discovers
  the cluster on a later call (`LazyCluster`), like a single-server client that connects on
  first use.

Keys that are read or written together carry a hash tag (`{...}`) so they map to one slot on a
cluster (`tag`); single-server key names are unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any
from urllib.parse import unquote, urlparse

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.backoff import NoBackoff
from redis.exceptions import MaxConnectionsError, RedisClusterException
from redis.retry import Retry

from clipforge.settings import Settings

log = logging.getLogger(__name__)

RedisClient = redis.Redis | redis.cluster.RedisCluster
AsyncRedisClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster

# A client built while the cluster was unreachable tries to discover it again at most this often.
_DISCOVER_EVERY_S = 1.0


def cluster_seeds(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """Seed nodes and connection options (credentials, TLS) of a REDIS_CLUSTER_URL.

    The format is comma-separated `redis://` or `rediss://` URLs, one per seed node; options
    are taken from the first (`redis://:secret@10.0.0.1:7000,redis://10.0.0.2:7000`).
    """
    seeds: list[tuple[str, int]] = []
    options: dict[str, Any] = {}
    for i, part in enumerate(p.strip() for p in url.split(",") if p.strip()):
        parsed = urlparse(part)
        if parsed.scheme not in ("redis", "rediss") or not parsed.hostname:
            raise ValueError(f"{part!r} is not a redis:// or rediss:// URL with a host")
        seeds.append((parsed.hostname, parsed.port or 6379))
        if i == 0:
            if parsed.username:
                options["username"] = unquote(parsed.username)
            if parsed.password:
                options["password"] = unquote(parsed.password)
            if parsed.scheme == "rediss":
                options["ssl"] = True
    if not seeds:
        raise ValueError("no seed node in the cluster URL")
    return seeds, options


def _no_retries() -> Retry:
    return Retry(NoBackoff(), 0)


class LazyCluster(redis.cluster.RedisCluster):
    """redis-py's sync cluster client that may start while no seed node answers.

    redis-py discovers the slot map in the constructor and raises when no node answers; a
    process must start without its cache (Redis is never required), so the discovery is
    retried on use instead, at most every `_DISCOVER_EVERY_S`, failing calls fast meanwhile.
    Its node pools raise `MaxConnectionsError` at once when full; a semaphore of the same size
    makes callers wait up to the socket timeout instead, as the single-server pool does.
    """

    def __init__(self, settings: Settings, url: str) -> None:
        seeds, options = cluster_seeds(url)
        timeout = settings.redis_socket_timeout_s
        self.seeds = seeds
        self.options = options
        self.settings = settings
        self._kwargs: dict[str, Any] = {
            "require_full_coverage": False,
            "retry": _no_retries(),
            "max_connections": settings.redis_max_connections,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            **options,
        }
        self._slots = threading.BoundedSemaphore(settings.redis_max_connections)
        self._wait_s = timeout
        self._ready = False
        self._discovering: int | None = None
        self._discover_lock = threading.Lock()
        self._next_discovery = 0.0
        self._discover()

    def _discover(self) -> None:
        self._discovering = threading.get_ident()
        try:
            node: Any = redis.cluster.ClusterNode  # redis-py leaves it untyped
            super().__init__(startup_nodes=[node(h, p) for h, p in self.seeds], **self._kwargs)
            self._ready = True
            log.info("redis cluster discovered", extra={"seeds": len(self.seeds)})
        except (RedisClusterException, redis.RedisError, OSError) as exc:
            self._next_discovery = time.monotonic() + _DISCOVER_EVERY_S
            log.warning(
                "redis cluster unreachable; cache off until it answers", extra={"error": repr(exc)}
            )
        finally:
            self._discovering = None

    def _ensure_ready(self) -> None:
        if self._ready or self._discovering == threading.get_ident():
            return
        with self._discover_lock:
            if not self._ready and time.monotonic() >= self._next_discovery:
                self._discover()
        if not self._ready:
            raise redis.ConnectionError("no Redis Cluster node answers")

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        """As redis-py's, after discovering the cluster if that has not happened yet."""
        self._ensure_ready()
        if not self._slots.acquire(timeout=self._wait_s):
            raise MaxConnectionsError("no Redis connection free")
        try:
            parent: Any = super()  # redis-py leaves its methods untyped
            return parent.execute_command(*args, **kwargs)
        finally:
            self._slots.release()

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
        """As redis-py's, after discovering the cluster if that has not happened yet."""
        self._ensure_ready()
        parent: Any = super()
        return parent.pipeline(transaction=transaction, shard_hint=shard_hint)

    def close(self) -> None:
        """Close every node's connections (nothing to close before discovery)."""
        if self._ready:
            super().close()


class AsyncCluster(redis.asyncio.cluster.RedisCluster):
    """redis-py's asyncio cluster client that waits for a free connection instead of failing.

    Its nodes raise `MaxConnectionsError` at once when all `max_connections` are busy; a
    semaphore of the same size in front makes a burst of requests queue for up to `wait_s`
    (as the single-server `BlockingConnectionPool` does), so a busy event loop does not read as
    a Redis outage.
    """

    def __init__(self, *, max_connections: int, wait_s: float, **kwargs: Any) -> None:
        super().__init__(max_connections=max_connections, **kwargs)
        self._slots = asyncio.Semaphore(max_connections)
        self._wait_s = wait_s

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        """As redis-py's, holding one of `max_connections` slots."""
        try:
            async with asyncio.timeout(self._wait_s):
                await self._slots.acquire()
        except TimeoutError:
            raise MaxConnectionsError("no Redis connection free") from None
        try:
            return await super().execute_command(*args, **kwargs)
        finally:
            self._slots.release()


def create_redis(settings: Settings, url: str | None = None) -> RedisClient | None:
    """A client for REDIS_CLUSTER_URL or REDIS_URL (or the single server at `url`).

    None when Redis is not configured.
    """
    if url is None and settings.redis_cluster_url:
        return LazyCluster(settings, settings.redis_cluster_url)
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


def create_async_redis(settings: Settings, sync_client: RedisClient) -> AsyncRedisClient:
    """An asyncio client to the same server or cluster, with the same limits, as `sync_client`.

    Asyncio clients are bound to the event loop that creates them; call this from that loop.
    """
    if isinstance(sync_client, LazyCluster):
        timeout = settings.redis_socket_timeout_s
        return AsyncCluster(
            startup_nodes=[redis.asyncio.cluster.ClusterNode(h, p) for h, p in sync_client.seeds],
            require_full_coverage=False,
            retry=_no_retries(),
            max_connections=settings.redis_max_connections,
            wait_s=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            **sync_client.options,
        )
    if isinstance(sync_client, redis.cluster.RedisCluster):
        raise TypeError("cluster clients come from create_redis (LazyCluster)")
    kwargs = dict(sync_client.connection_pool.connection_kwargs)
    pool = redis.asyncio.BlockingConnectionPool(
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_socket_timeout_s,
        **kwargs,
    )
    return redis.asyncio.Redis(connection_pool=pool)


def is_cluster(client: RedisClient | AsyncRedisClient | None) -> bool:
    """Whether `client` talks to a Redis Cluster."""
    return isinstance(client, redis.cluster.RedisCluster | redis.asyncio.cluster.RedisCluster)


def tag(value: str, *, cluster: bool) -> str:
    """`value` as a hash tag on a cluster (keys sharing it share a slot), else unchanged."""
    return f"{{{value}}}" if cluster else value


def node_of(client: RedisClient | AsyncRedisClient | None, key: str) -> str:
    """The `host:port` of the master serving `key` ("" for one server, or when not known yet).

    Lets callers keep per-node state (a circuit breaker, a back-off window) so one lost master
    does not switch the cache off for the slots the others still serve.
    """
    if not is_cluster(client):
        return ""
    assert isinstance(client, redis.cluster.RedisCluster | redis.asyncio.cluster.RedisCluster)
    try:
        node = client.nodes_manager.get_node_from_slot(client.keyslot(key))
    except (RedisClusterException, redis.RedisError, AttributeError, IndexError, KeyError):
        return ""  # not discovered yet, or the slot is not covered now
    return str(node.name)


def ping(client: RedisClient) -> None:
    """PING the server, or every master of a cluster (raises if any does not answer).

    One lost master is a degraded cache, so readiness should say so whichever node the
    client would otherwise have picked for a keyless command.
    """
    if isinstance(client, redis.cluster.RedisCluster):
        client.ping(target_nodes=redis.cluster.RedisCluster.PRIMARIES)
    else:
        client.ping()
