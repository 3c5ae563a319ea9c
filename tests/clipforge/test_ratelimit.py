"""The GCRA rate limiter, shared across processes through Redis."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from clipforge.ratelimit import RateLimiter
from clipforge.redis_client import create_redis
from clipforge.settings import Settings
from tests.utils.servers import free_port

_REPO = Path(__file__).resolve().parents[2]
_CHILD = """
import json, sys
from clipforge.ratelimit import RateLimiter
from clipforge.redis_client import create_redis
from clipforge.settings import load_settings
url, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
limiter = RateLimiter(create_redis(load_settings(), url), per_minute=10, burst=10)
sys.stdin.readline()  # start together
out = []
for _ in range(n):
    d = limiter.check(key)
    out.append([d.allowed, d.retry_after_s])
print(json.dumps(out))
"""


def test_n_allowed_then_refused_across_two_processes(redis_url: str, redis_prefix: str) -> None:
    key = redis_prefix + "api-key-1"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, redis_url, key, str(n)],
            cwd=_REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in (6, 5)
    ]
    results = []
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        results += json.loads(out)
    allowed = [r for r in results if r[0]]
    refused = [r for r in results if not r[0]]
    assert len(allowed) == 10 and len(refused) == 1
    # 10 per minute: the next slot opens 6 s after the burst began.
    assert 0 < refused[0][1] <= 6.0


def test_keys_are_limited_independently(
    settings: Settings, redis_url: str, redis_prefix: str
) -> None:
    limiter = RateLimiter(
        create_redis(settings, redis_url), per_minute=60, burst=2, prefix=redis_prefix
    )
    assert [limiter.check("a").allowed for _ in range(3)] == [True, True, False]
    assert limiter.check("b").allowed
    decision = limiter.check("a")
    assert not decision.allowed and 0 < decision.retry_after_s <= 1.0


def test_limiter_fails_open_when_redis_is_down(settings: Settings) -> None:
    client = create_redis(settings, f"redis://127.0.0.1:{free_port()}/0")
    limiter = RateLimiter(client, per_minute=1, burst=1)
    assert all(limiter.check("k").allowed for _ in range(3))
