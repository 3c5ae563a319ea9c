"""Issue #28: the API at the edge. The header, keep-alive, forwarded-address and upload checks run
against one real `clipforge api` process on loopback (timings scaled down through its settings);
the rest through the in-process app.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

from clipforge.db.pool import Pool
from clipforge.db.repo.api_keys import ApiKey
from clipforge.fetch import REFUSED
from clipforge.settings import Settings
from serve_apps.api.app import create_app
from serve_apps.api.deps import ApiDeps
from serve_apps.api.errors import MAX_ERROR_DETAILS
from tests.serve_apps.helpers import table_counts
from tests.utils.factories import make_key
from tests.utils.servers import free_port, wait_for_port
from tests.utils.wait import wait_until

Auth = tuple[ApiKey, dict[str, str]]
HEADER_TIMEOUT_S = 1.0
UVICORN_DEFAULT_KEEPALIVE_S = 5.0
PROXY = "127.0.0.2"  # the "balancer": a loopback address the server trusts, unlike 127.0.0.1
MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
CLUSTER = Path(__file__).resolve().parents[2] / "cluster"


@dataclass
class ApiProcess:
    port: int
    pid: int
    tmp: Path
    idle: socket.socket  # a keep-alive connection left idle since `idle_since`
    idle_since: float


def _request(path: str = "/health", extra: bytes = b"", close: bool = True) -> bytes:
    connection = b"Connection: close\r\n" if close else b""
    return f"GET {path} HTTP/1.1\r\nHost: api\r\n".encode() + connection + extra + b"\r\n"


def _read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length (a response may arrive in several pieces)."""
    data = b""

    def more() -> bytes:
        piece = sock.recv(65536)
        if not piece:
            raise ConnectionError("the server closed the connection")
        return piece

    while b"\r\n\r\n" not in data:
        data += more()
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
    while len(body) < length:
        body += more()
    return head + b"\r\n\r\n" + body


def _exchange(port: int, payload: bytes, *, timeout_s: float = 10.0) -> bytes:
    """Send `payload`, read until the server closes (a timeout means it did not)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        # Closed while we were still sending: what a refusal may look like.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(payload)
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except ConnectionResetError:
            pass  # unread input when the server closed: the kernel sends RST
        return answer


@pytest.fixture(scope="module")
def api_process(
    api_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    folder = tmp_path_factory.mktemp("api-edge")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("S3_")} | {
        "DATABASE_URL": str(api_settings.database_url),
        "REDIS_URL": str(api_settings.redis_url),
        "ENVIRONMENT": "test",
        "DATA_DIR": str(folder),
        "LOCAL_STORAGE_DIR": str(folder / "storage"),
        "TMPDIR": str(folder),  # where uploads are spooled: the test watches them arrive
        "API_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "API_BODY_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "API_MAX_CONCURRENT_UPLOADS": "2",
        "API_TRUSTED_PROXY_CIDRS": json.dumps([f"{PROXY}/32"]),
        "AUTH_FAILURES_PER_MINUTE": "1",
        "AUTH_FAILURES_BURST": "2",
    }
    exe = Path(sys.executable).with_name("clipforge")
    with (folder / "api.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(exe), "api", "--port", str(port)], env=env, stdout=log, stderr=log
        )
    try:
        wait_for_port(port, timeout_s=60, proc=proc)  # type: ignore[arg-type]
        idle = socket.create_connection(("127.0.0.1", port), timeout=10)
        idle.sendall(_request(close=False))
        assert _read_response(idle).startswith(b"HTTP/1.1 200")
        yield ApiProcess(port, proc.pid, folder, idle, time.monotonic())
        idle.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_header_size_and_field_count_are_limited(api_process: ApiProcess) -> None:
    port = api_process.port
    # Under the limit (32 KiB): served.
    assert _exchange(port, _request(extra=b"X-A: " + b"a" * 20_000 + b"\r\n")).startswith(
        b"HTTP/1.1 200"
    )
    too_many = b"".join(b"X-%d: 1\r\n" % i for i in range(300))
    assert _exchange(port, _request(extra=too_many)).startswith(b"HTTP/1.1 431")
    for extra in (
        b"X-A: " + b"a" * 40_000 + b"\r\n",  # one field over the limit
        b"X-A: " + b"a" * 1_000_000,  # a field that never ends: no longer held open
    ):
        answer = _exchange(port, _request(extra=extra))
        assert answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer[:100]


def test_headers_that_trickle_in_time_out(api_process: ApiProcess) -> None:
    socks = [socket.create_connection(("127.0.0.1", api_process.port)) for _ in range(20)]
    for sock in socks:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: api\r\nX-Slow: ")
    started = time.monotonic()
    answers: dict[socket.socket, bytes] = {}
    # Closed at all shows the limit (uvicorn alone never closes them); the deadline is loose
    # because a busy machine fires timers late.
    while len(answers) < len(socks) and time.monotonic() - started < 6 * HEADER_TIMEOUT_S:
        for sock in socks:
            if sock not in answers:
                try:
                    sock.send(b"a")  # one byte at a time, never the end of the header
                except OSError:
                    answers[sock] = b""
        readable, _, _ = select.select([s for s in socks if s not in answers], [], [], 0.2)
        for sock in readable:
            answers[sock] = sock.recv(65536)
    elapsed = time.monotonic() - started
    for sock in socks:
        sock.close()
    assert len(answers) == len(socks), f"{len(socks) - len(answers)} still open after {elapsed}s"
    assert all(a == b"" or a.startswith(b"HTTP/1.1 408") for a in answers.values())


def test_a_body_that_stops_arriving_times_out(api_process: ApiProcess) -> None:
    head = (
        b"POST /v1/videos HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n"
    )
    answer = _exchange(api_process.port, head + b'{"source_url": ')  # closed within 10 s
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


def test_forwarded_client_address_reaches_the_failed_auth_limiter(
    api_process: ApiProcess,
) -> None:
    base = f"http://127.0.0.1:{api_process.port}"
    bad = {"Authorization": "Bearer cf_not_a_key"}
    first, second = _client_addresses()
    transport = httpx.HTTPTransport(local_address=PROXY)
    with httpx.Client(base_url=base, transport=transport) as via_proxy:
        statuses = [
            via_proxy.get("/v1/videos", headers=bad | {"X-Forwarded-For": first}).status_code
            for _ in range(4)
        ]
        assert statuses[0] == 401 and statuses[-1] == 429, statuses
        # Another client behind the same balancer is not locked out by the first one.
        other = via_proxy.get("/v1/videos", headers=bad | {"X-Forwarded-For": second})
        assert other.status_code == 401
    # From an untrusted peer the header is ignored: its own address is the one limited.
    with httpx.Client(base_url=base) as direct:
        spoofed = direct.get("/v1/videos", headers=bad | {"X-Forwarded-For": second})
        assert spoofed.status_code in (401, 429)


def _client_addresses() -> tuple[str, str]:
    # Random ones: limiter buckets of other runs on the same Redis never meet these.
    first, second = (ipaddress.IPv6Address(uuid.uuid4().int) for _ in range(2))
    return str(first), str(second)


def _vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_uploads_stream_to_storage_and_are_capped_per_process(
    api_process: ApiProcess, db: Pool
) -> None:
    _, raw = make_key(db, "edge-upload")
    size = 24 * 1024**2
    body = MP4_HEAD + b"\x00" * (size - len(MP4_HEAD))
    head = (
        f"POST /v1/videos/upload HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {raw}\r\n"
        f"Content-Type: video/mp4\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    ).encode()
    go = threading.Event()
    answers: list[bytes] = []

    def upload(sock: socket.socket) -> None:
        sock.sendall(head)
        for start in range(0, size, 64 * 1024):
            if start >= 1024**2 and not go.is_set():
                # Hold the slot: a trickle, within the server's 1 s body pause limit.
                go.wait(0.2)
            sock.sendall(body[start : start + 64 * 1024])
        answers.append(b"".join(iter(lambda: sock.recv(65536), b"")))
        sock.close()

    held = [socket.create_connection(("127.0.0.1", api_process.port)) for _ in range(2)]
    threads = [threading.Thread(target=upload, args=(sock,)) for sock in held]
    for thread in threads:
        thread.start()
    wait_until(  # both are being spooled
        lambda: len(list(api_process.tmp.glob("cf-upload-*/upload"))) >= 2,
        timeout_s=30,
        what="both uploads to start",
    )
    auth = {"Authorization": f"Bearer {raw}", "Content-Type": "video/mp4"}
    url = f"http://127.0.0.1:{api_process.port}/v1/videos/upload"
    busy = httpx.post(url, content=MP4_HEAD + b"\x00" * 1024, headers=auth)
    assert busy.status_code == 503 and busy.json()["error"]["code"] == "uploads_busy"
    assert int(busy.headers["Retry-After"]) >= 1

    before = _vm_hwm_kib(api_process.pid)
    go.set()
    for thread in threads:
        thread.join(timeout=60)
    assert [a.split(b" ", 2)[1] for a in answers] == [b"202", b"202"], answers
    grown_mib = (_vm_hwm_kib(api_process.pid) - before) / 1024
    # Whole bodies in memory cost ~2.7x their size (130 MB here); streamed, a few buffers.
    assert grown_mib < 16, f"peak RSS grew {grown_mib:.0f} MiB for 2 x 24 MiB uploads"
    assert table_counts(db)["videos"] == 2


def test_keep_alive_outlasts_client_think_time(api_process: ApiProcess) -> None:
    # uvicorn's default (5 s) closed connections inside clients' 1-5 s think time and under a
    # balancer's 60 s idle timeout; the connection opened at start must still serve.
    idle_s = UVICORN_DEFAULT_KEEPALIVE_S + 1 - (time.monotonic() - api_process.idle_since)
    time.sleep(max(0.0, idle_s))
    api_process.idle.sendall(_request())
    assert _read_response(api_process.idle).startswith(b"HTTP/1.1 200")


# --- the in-process app ---------------------------------------------------------------------


def test_the_app_refuses_oversized_headers_too(client: TestClient) -> None:
    # What the Serve ingress relies on: its proxy is Serve's own uvicorn, without the guard.
    assert client.get("/health", headers={"X-Big": "a" * 40_000}).status_code == 431
    many = {f"X-{i}": "1" for i in range(150)}
    assert client.get("/health", headers=many).status_code == 431
    assert client.get("/health", headers={"X-A": "a" * 20_000}).status_code == 200


def test_validation_errors_are_cheap_and_capped(client: TestClient, owner: Auth) -> None:
    # Thousands of unknown keys: one error, not one each (seconds of CPU and megabytes before).
    body = {"source_url": "https://93.184.216.34/v.mp4"} | {f"k{i}": 0 for i in range(5000)}
    r = client.post("/v1/videos", json=body, headers=owner[1])
    assert r.status_code == 422 and len(r.content) < 2048
    (detail,) = r.json()["error"]["details"]
    assert "5001 members" in detail["msg"] and "k0" in detail["msg"]
    # Many invalid list items: the answer lists MAX_ERROR_DETAILS and counts the rest.
    words = client.put(
        f"/v1/clips/{uuid.uuid4()}/words", json={"words": [0] * 100}, headers=owner[1]
    )
    assert words.status_code == 422
    error = words.json()["error"]
    assert len(error["details"]) == MAX_ERROR_DETAILS
    assert f"{100 - MAX_ERROR_DETAILS} more errors left out" in error["message"]


@pytest.mark.parametrize(
    "url",
    [
        "http://.127.0.0.1/",
        "http://127..0.0.1/",
        f"http://{'a' * 64}.example.com/",
        "http://[fec0::1]/",
        "http://192.0.0.8/",
        "http://[3fff::1]/",
        "http://93.184.216.34:0/x.mp4",
    ],
)
def test_malformed_and_non_public_urls_are_422(
    client: TestClient, owner: Auth, db: Pool, url: str
) -> None:
    source = client.post("/v1/videos", json={"source_url": url}, headers=owner[1])
    hook = client.post(
        "/v1/webhooks", json={"url": url, "events": ["video.ready"]}, headers=owner[1]
    )
    assert source.status_code == hook.status_code == 422, (source.text, hook.text)
    assert table_counts(db)["videos"] == table_counts(db)["webhooks"] == 0


def test_refusal_names_no_address(client: TestClient, owner: Auth) -> None:
    r = client.post("/v1/videos", json={"source_url": "http://localhost/"}, headers=owner[1])
    assert r.status_code == 422 and r.json()["error"]["message"] == REFUSED


def test_trailing_slash_is_not_redirected_to_the_host_header(client: TestClient) -> None:
    r = client.get("/v1/videos/", headers={"Host": "evil.example"}, follow_redirects=False)
    assert r.status_code == 404 and "location" not in r.headers


def test_operations_doc_states_the_revocation_delay() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    rotate = text.split("## Rotate API keys", 1)[1].split("\n## ", 1)[0]
    assert "at once" not in rotate and "API_KEY_CACHE_TTL_S" in rotate


def _shipped_proxy(setup: str) -> tuple[list[str], str]:
    """The trusted networks a shipped setup gives the API, and its balancer's address."""
    if setup == "compose":
        services = yaml.safe_load((CLUSTER / "compose.yaml").read_text())["services"]
        assert services["api-2"]["environment"] == services["api"]["environment"]
        template = (CLUSTER / "nginx/templates/clipforge.conf.template").read_text()
        assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in template
        cidrs = json.loads(services["api"]["environment"]["API_TRUSTED_PROXY_CIDRS"])
        return cidrs, services["lb"]["networks"]["default"]["ipv4_address"]
    folder = CLUSTER / "kuberay"
    resources = yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]
    docs = [d for name in resources for d in yaml.safe_load_all((folder / name).read_text())]
    (config,) = [d for d in docs if d and d["metadata"]["name"] == "clipforge-config"]
    cidrs = json.loads(config["data"]["API_TRUSTED_PROXY_CIDRS"])
    # An ingress-nginx pod: any address of the pod network the config names.
    return cidrs, str(next(ipaddress.ip_network(cidrs[0]).hosts()))


@pytest.mark.parametrize("setup", ["compose", "kuberay"])
def test_shipped_balancers_are_trusted_and_client_addresses_reach_the_limiter(
    api_deps: ApiDeps, setup: str
) -> None:
    cidrs, proxy = _shipped_proxy(setup)
    settings = api_deps.settings.model_copy(update={"api_trusted_proxy_cidrs": cidrs})
    deps = dataclasses.replace(api_deps, settings=settings)
    bad = {"Authorization": "Bearer cf_not_a_key"}
    first, second = _client_addresses()
    with TestClient(create_app(deps), client=(proxy, 40000)) as balancer:
        for _ in range(settings.auth_failures_burst + 5):
            status = balancer.get("/v1/videos", headers=bad | {"X-Forwarded-For": first})
            if status.status_code == 429:
                break
        assert status.status_code == 429
        other = balancer.get("/v1/videos", headers=bad | {"X-Forwarded-For": second})
        assert other.status_code == 401
