"""The project's nginx config (cluster/nginx) in front of two real API processes.

nginx from the Debian package runs the template rendered with loopback ports and a self-signed
certificate made here. Under a steady stream of GETs one API instance is killed: no request
fails (nginx retries idempotent requests on the other instance, `proxy_next_upstream`). Also
checked: HTTP -> HTTPS redirect, one HSTS header, X-Request-ID passed through (or made up),
the body limit, and that /metrics of an instance with two workers adds both up (Prometheus
multiprocess mode). Bounded: a few seconds of load from 6 client threads, loopback only.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from string import Template

import httpx
import pytest

from clipforge.db.pool import Pool
from clipforge.settings import Settings
from tests.utils.factories import make_key, make_video
from tests.utils.servers import free_port, wait_for_port
from tests.utils.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "cluster" / "nginx" / "templates" / "clipforge.conf.template"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
pytestmark = [
    pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx not installed (apt-get install)"),
    pytest.mark.timeout(120),
]


def _api(settings: Settings, port: int, tmp: Path, workers: int) -> subprocess.Popen[bytes]:
    metrics = tmp / f"metrics-{port}"
    metrics.mkdir()
    env = os.environ | {
        "DATABASE_URL": str(settings.database_url),
        "REDIS_URL": str(settings.redis_url),
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_PER_MINUTE": "1000000",
        "RATE_LIMIT_BURST": "100000",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
    }
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "serve_apps.api.main:create_app_from_env"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    cmd += ["--log-level", "warning", "--no-access-log"]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, start_new_session=True
    )


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _nginx_conf(tmp: Path, http: int, https: int, apis: list[int]) -> Path:
    cert, key = tmp / "tls.crt", tmp / "tls.key"
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subprocess.run(
        [*openssl, "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    site = Template(TEMPLATE.read_text()).safe_substitute(
        CF_API_1=f"127.0.0.1:{apis[0]}",
        CF_API_2=f"127.0.0.1:{apis[1]}",
        CF_LISTEN_HTTP=f"127.0.0.1:{http}",
        CF_LISTEN_HTTPS=f"127.0.0.1:{https}",
        CF_TLS_CERT=str(cert),
        CF_TLS_KEY=str(key),
        CF_MAX_BODY="1m",
        CF_HTTPS_PORT_SUFFIX=f":{https}",
    )
    (tmp / "site.conf").write_text(site.replace("/dev/stdout", str(tmp / "access.log")))
    main = tmp / "nginx.conf"
    main.write_text(
        f"""daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/site.conf;
}}
"""
    )
    return main


@pytest.fixture()
def balanced(
    api_settings: Settings, tmp_path: Path
) -> Iterator[tuple[str, list[subprocess.Popen[bytes]], list[int]]]:
    """nginx (HTTPS) over two API instances; yields its URL, the instances and their ports."""
    ports = [free_port(), free_port()]
    # The first instance runs two workers, as production does; the second one is killed.
    apis = [_api(api_settings, ports[0], tmp_path, 2), _api(api_settings, ports[1], tmp_path, 1)]
    http, https = free_port(), free_port()
    nginx = None
    try:
        conf = _nginx_conf(tmp_path, http, https, ports)
        nginx = subprocess.Popen([NGINX, "-c", str(conf)], start_new_session=True)
        for port, proc in zip(ports, apis, strict=True):
            wait_for_port(port, timeout_s=60, proc=proc)
        wait_for_port(https, timeout_s=10, proc=nginx)
        yield f"https://127.0.0.1:{https}", apis, [http, *ports]
    finally:
        if nginx is not None:
            _stop(nginx, signal.SIGQUIT)
        for proc in apis:
            _stop(proc)


def test_balancer_survives_an_instance_stopping_mid_load(
    balanced: tuple[str, list[subprocess.Popen[bytes]], list[int]], db: Pool
) -> None:
    url, apis, (http, api_port, _) = balanced
    key, raw = make_key(db, "lb")
    video = make_video(db, key)
    auth = {"Authorization": f"Bearer {raw}"}
    statuses: list[int] = []
    failures: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=url, verify=False, timeout=10, headers=auth) as client:
            while not stop.is_set():
                for path in ("/health", "/v1/videos", f"/v1/videos/{video.id}"):
                    try:
                        statuses.append(client.get(path).status_code)
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))

    threads = [threading.Thread(target=load) for _ in range(6)]
    for t in threads:
        t.start()

    def answered(n: int) -> bool:  # counts, not seconds: at load ~6, 1.5 s had seen 12 requests
        return len(statuses) + len(failures) >= n

    wait_until(lambda: answered(30), timeout_s=30, what=lambda: (len(statuses), failures[:3]))
    before = len(statuses)
    os.killpg(apis[1].pid, signal.SIGKILL)  # requests in flight on it are retried by nginx
    wait_until(
        lambda: answered(before + 60), timeout_s=30, what=lambda: (len(statuses), failures[:3])
    )
    stop.set()
    for t in threads:
        t.join(timeout=20)
    assert len(statuses) > before + 20, (before, len(statuses))
    # A request the killed instance had not started answering is retried by nginx. One whose
    # headers nginx had already passed on cannot be retried by any proxy: the client sees a body
    # cut short (rare: the kill has to land between uvicorn's two writes). Anything else, an
    # error status or a refused connection, is a failure of the balancer.
    cut_short = [f for f in failures if "without sending complete message body" in f]
    assert len(cut_short) <= 2 and len(cut_short) == len(failures), failures[:3]
    assert set(statuses) == {200}, sorted(set(statuses))

    with httpx.Client(verify=False, timeout=10) as client:
        # Plain HTTP only redirects, keeping the method (308).
        r = client.post(f"http://127.0.0.1:{http}/v1/videos", follow_redirects=False)
        assert r.status_code == 308
        assert r.headers["location"] == f"{url}/v1/videos"
        r = client.get(f"{url}/v1/videos", headers=auth | {"X-Request-ID": "lb-test-1"})
        assert r.headers["x-request-id"] == "lb-test-1"
        assert r.headers.get_list("strict-transport-security") == [
            "max-age=63072000; includeSubDomains"
        ]
        assert re.fullmatch(r"[0-9a-f]{32}", client.get(f"{url}/health").headers["x-request-id"])
        too_big = client.post(f"{url}/v1/videos", content=b"x" * (1024**2 + 1), headers=auth)
        assert too_big.status_code == 413

        # The instance with two workers reports both in one scrape.
        served = 0
        for _ in range(20):
            client.get(f"http://127.0.0.1:{api_port}/health")
        text = client.get(f"http://127.0.0.1:{api_port}/metrics").text
        for line in text.splitlines():
            if line.startswith('clipforge_http_requests_total{method="GET",route="/health"'):
                served += int(float(line.rsplit(" ", 1)[1]))
        assert served >= 20
