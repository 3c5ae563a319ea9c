"""Process resources of the API and the `Annotated` dependency aliases handlers use.

`ApiDeps` is opened once per process (uvicorn worker or Serve replica) and hung on
`app.state`; handlers receive its parts through the aliases below, so each stays a few lines.
Authentication and the per-key rate limit are one async dependency (`serve_apps.api.auth`):
every `/v1` route that takes `AuthKey` is authenticated and rate-limited before its body is
looked at, on the event loop, with the key from an in-process cache and one Redis round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response

from clipforge.cache import Cache
from clipforge.db.pool import Conn, Pool, create_pool
from clipforge.db.pool_metrics import register_pool_metrics
from clipforge.db.replicas import ReplicaRouter
from clipforge.db.repo.api_keys import ApiKey
from clipforge.fetch import Resolver, system_resolver
from clipforge.queue import QueuePolicy
from clipforge.ratelimit import RateLimiter
from clipforge.redis_client import RedisClient, create_redis
from clipforge.settings import Settings
from clipforge.storage import ObjectStore, create_store
from clipforge.storage.signed import MediaSigner, media_url_secret
from serve_apps.api.auth import (
    ASYNC_POOL_SIZE,
    KeyCache,
    LoopResources,
    cache_keys_for,
    lookup_key,
    raw_key_of,
    remember_prefetch,
)
from serve_apps.api.backend import ModelBackend
from serve_apps.api.errors import ModelsUnavailable, RateLimited, Unauthorized

IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,200}$"
# Replica reads that fill the shared Redis cache must be fresher than this. An invalidation
# leaves a tombstone for `clipforge.cache._TOMBSTONE_TTL_S` (5 s) that blocks refills, so a
# refill after it reads a replica holding every commit made more than this long ago: never
# the state from before the write that invalidated it.
CACHE_FILL_MAX_STALENESS_S = 4.0
T = TypeVar("T")


@dataclass(slots=True)
class ApiDeps:
    """Everything a request may touch; safe to share between threads.

    Attributes:
        settings: process settings.
        pool: Postgres pool (bounded, with checkout and statement timeouts).
        redis: Redis client, or None when Redis is not configured.
        cache: cache-aside reads (degrades to Postgres when Redis is down).
        limiter: per-key rate limiter.
        store: object storage.
        models: online model backend; None in the standalone tier.
        resolver: DNS lookup behind the SSRF checks of user-supplied URLs.
        auth_failures: rate limiter of failed authentications per client address.
        keys: active API keys seen in the last API_KEY_CACHE_TTL_S (rebuilt by `replace`).
        aio: asyncio Postgres pool and Redis clients, per event loop (rebuilt by `replace`).
        reads: routes lag-tolerant reads to read replicas (primary-only without any).
        signer: signs `/media/` download URLs; set when media is in a local folder without a
            CDN in front (S3 has presigned URLs, a CDN its own).
        queue: the queue policy jobs are enqueued with (QUEUE_MAX_ATTEMPTS), built once.
    """

    settings: Settings
    pool: Pool
    redis: RedisClient | None
    cache: Cache
    limiter: RateLimiter
    store: ObjectStore
    models: ModelBackend | None = None
    resolver: Resolver = system_resolver
    auth_failures: RateLimiter | None = None
    reads: ReplicaRouter | None = None
    keys: KeyCache = field(init=False)
    aio: LoopResources = field(init=False)
    signer: MediaSigner | None = field(init=False, default=None)
    queue: QueuePolicy = field(init=False)

    def __post_init__(self) -> None:
        self.queue = QueuePolicy.from_settings(self.settings)
        if self.reads is None:
            self.reads = ReplicaRouter(self.pool)
        self.keys = KeyCache(self.settings.api_key_cache_ttl_s)
        conninfo = self.pool.conninfo
        url = conninfo if isinstance(conninfo, str) else ""
        self.aio = LoopResources(self.settings, url, self.pool.name)
        if self.settings.storage_backend == "local" and not self.settings.cdn_base_url:
            secret = media_url_secret(self.settings)
            self.signer = MediaSigner(secret, self.settings.s3_presign_expiry_s)

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        database_url: str | None = None,
        models: ModelBackend | None = None,
        redis_prefix: str = "cf:",
        application_name: str = "clipforge-api",
    ) -> ApiDeps:
        """Connect to Postgres, Redis and storage as `settings` say."""
        from clipforge.db.embedded import resolve_database_url

        url = database_url or resolve_database_url(settings)
        pool = create_pool(
            settings,
            url,
            application_name=application_name,
            timeout_s=settings.api_db_pool_timeout_s,
        )
        register_pool_metrics(pool)  # saturation on this process's /metrics
        client = create_redis(settings)
        # API-key lookups (the asyncio pool) stay on the primary: a key created a moment ago
        # must work and a revoked one stop, whatever a replica has replayed.
        try:
            reads = ReplicaRouter.open(
                settings,
                pool,
                redis_client=client,
                redis_prefix=redis_prefix,
                application_name=application_name,
                other_connections=ASYNC_POOL_SIZE,
            )
        except BaseException:
            pool.close()
            if client is not None:
                client.close()
            raise
        return cls(
            settings=settings,
            pool=pool,
            redis=client,
            cache=Cache(client, prefix=redis_prefix),
            limiter=RateLimiter(
                client,
                per_minute=settings.rate_limit_per_minute,
                burst=settings.rate_limit_burst,
                prefix=f"{redis_prefix}rl:",
            ),
            store=create_store(settings),
            models=models,
            auth_failures=RateLimiter(
                client,
                per_minute=settings.auth_failures_per_minute,
                burst=settings.auth_failures_burst,
                prefix=f"{redis_prefix}authfail:",
            ),
            reads=reads,
        )

    @property
    def router(self) -> ReplicaRouter:
        """The read router (always set after construction)."""
        assert self.reads is not None
        return self.reads

    def read(self, key: ApiKey, fn: Callable[[Conn], T], *, fills_cache: bool = False) -> T:
        """Run the read-only `fn(conn)` for `key` on a replica, or on the primary.

        Only for reads that tolerate replica lag and are not part of a write; `key` sees its own
        writes. `fills_cache`: the result is stored in the shared cache (see
        `CACHE_FILL_MAX_STALENESS_S`).
        """
        bound = CACHE_FILL_MAX_STALENESS_S if fills_cache else None
        return self.router.run(str(key.id), fn, max_staleness_s=bound)

    def close(self) -> None:
        """Release connections (the asyncio ones close with each app's lifespan)."""
        self.router.close()
        self.pool.close()
        if self.redis is not None:
            self.redis.close()


# Dependencies that do no I/O are `async def`: FastAPI runs plain `def` ones in its threadpool,
# a thread hop per dependency per request.
async def get_deps(request: Request) -> ApiDeps:
    """The process's `ApiDeps`."""
    deps: ApiDeps = request.app.state.deps
    return deps


Deps = Annotated[ApiDeps, Depends(get_deps)]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class ApiRoute(APIRoute):
    """Route class of the `/v1` routers: records each write for read-your-writes.

    After a handler that may write returns (its transactions committed) and before the
    response leaves, the caller's key gets a mark at the primary's WAL position
    (`ReplicaRouter.record_write`), so its next read, on any API process, sees the write.
    Done here rather than at each write so a new write route cannot forget it. Nothing
    happens without read replicas.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The handler, wrapped to record the write when the method is not a safe one."""
        handler = super().get_route_handler()
        if not (self.methods or set()) - _SAFE_METHODS:
            return handler

        async def record_writes(request: Request) -> Response:
            try:
                return await handler(request)
            finally:
                key_id = getattr(request.state, "api_key_id", None)
                router = request.app.state.deps.router
                if key_id is not None and router.enabled:
                    await run_in_threadpool(router.record_write, key_id)

        return record_writes


_bearer = HTTPBearer(auto_error=False, description="An API key from `clipforge keys create`.")


def client_address(request: Request) -> str:
    """The client address: the peer, or the one a trusted proxy named (`create_app`)."""
    return request.client.host if request.client is not None else "unknown"


async def check_api_key(deps: ApiDeps, request: Request, raw_key: str | None = None) -> ApiKey:
    """Authenticate from the `Authorization` header (or `raw_key`, taken from elsewhere by the
    caller), then apply the per-key rate limit.

    A wrong key counts against the caller's address (`deps.auth_failures`), so guessing keys is
    rate limited too; the 429 then replaces the 401. Used by the `AuthKey` dependency and by the
    malformed-body handler, so an unauthenticated request never learns how its body parsed.
    """
    raw = raw_key_of(request) if raw_key is None else raw_key
    key, _ = await lookup_key(deps.aio, deps.keys, raw)
    if key is None:
        if deps.auth_failures is not None:
            refused, _ = await deps.auth_failures.acheck(
                deps.aio.redis(deps.auth_failures.client), f"addr:{client_address(request)}"
            )
            if not refused.allowed:
                raise RateLimited(refused.retry_after_s)
        raise Unauthorized("invalid or revoked API key")
    # The cache reads ride along only when the cache and the limiter share a Redis.
    same_redis = deps.cache.client is not None and deps.cache.client is deps.limiter.client
    names = (
        cache_keys_for(request.url.path, request.method, deps.cache.full_key) if same_redis else []
    )
    decision, values = await deps.limiter.acheck(
        deps.aio.redis(deps.limiter.client), str(key.id), get=names
    )
    if not decision.allowed:
        raise RateLimited(decision.retry_after_s)
    remember_prefetch(names, values)
    request.state.api_key_id = str(key.id)
    return key


async def authenticate_request(
    request: Request,
    deps: Deps,
    # Declared for the OpenAPI security scheme; the header is read by `check_api_key`.
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    """The caller's API key, after the per-key rate limit; 401 / 429 otherwise."""
    return await check_api_key(deps, request)


AuthKey = Annotated[ApiKey, Depends(authenticate_request)]


async def idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description="Retries with the same key return the first answer instead of redoing it.",
        ),
    ] = None,
) -> str | None:
    """The validated `Idempotency-Key` header, if any (1-200 of `[A-Za-z0-9_.:-]`)."""
    return key


IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]


async def get_models(deps: Deps) -> ModelBackend:
    """The model backend; 503 in the standalone tier."""
    if deps.models is None:
        raise ModelsUnavailable(
            "model endpoints are served by the Ray Serve ingress (`clipforge serve`)"
        )
    return deps.models


Models = Annotated[ModelBackend, Depends(get_models)]
