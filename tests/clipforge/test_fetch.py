"""SSRF guard and bounded downloads, against a real local HTTP server."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipforge.errors import MediaError, ValidationFailed
from clipforge.fetch import check_url, download, parse_networks
from tests.utils.http_server import serve_routes

LOOPBACK = parse_networks(["127.0.0.1/32"])  # what an operator would allow for an internal host


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/video.mp4",
        "http://localhost:8080/x",
        "http://10.1.2.3/x",
        "http://192.168.0.10/x",
        "http://172.16.5.4/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://0.0.0.0/x",
        "http://2130706433/x",  # 127.0.0.1 written as one decimal number
        "file:///etc/passwd",
        "ftp://example.com/x",
        "gopher://example.com/x",
        "http://user:pass@example.com/x",
        "http:///nohost",
        "not a url",
    ],
)
def test_non_public_and_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationFailed):
        check_url(url)


def test_public_looking_name_resolving_to_loopback_is_refused() -> None:
    def evil_dns(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "127.0.0.1"]  # one public answer does not make it safe

    with pytest.raises(ValidationFailed, match="non-public address"):
        check_url("https://media.example.com/v.mp4", resolver=evil_dns)


def test_public_address_passes_and_is_pinned() -> None:
    checked = check_url("https://media.example.com/v.mp4", resolver=lambda h, p: ["93.184.216.34"])
    assert (
        checked.address == "93.184.216.34"
        and checked.port == 443
        and checked.host == "media.example.com"
    )


def test_download_streams_to_file_within_limits(tmp_path: Path) -> None:
    body = b"\x00\x01" * 5000
    with serve_routes({"/v.mp4": (200, {"Content-Type": "video/mp4"}, body)}) as base:
        with pytest.raises(ValidationFailed):  # loopback is refused unless explicitly allowed
            download(f"{base}/v.mp4", tmp_path / "a", max_bytes=10**6)
        got = download(f"{base}/v.mp4", tmp_path / "b", max_bytes=10**6, allowed=LOOPBACK)
    assert (
        got.size == len(body) and got.path.read_bytes() == body and got.content_type == "video/mp4"
    )


def test_redirect_to_private_network_is_refused(tmp_path: Path) -> None:
    routes = {
        "/meta": (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
        "/private": (301, {"Location": "http://10.0.0.7/secret"}, b""),
    }
    with serve_routes(routes) as base:
        for path in ("/meta", "/private"):
            with pytest.raises(ValidationFailed, match="non-public"):
                download(f"{base}{path}", tmp_path / "x", max_bytes=100, allowed=LOOPBACK)
    assert not (tmp_path / "x").exists()


def test_oversized_and_missing_sources_fail_without_leftovers(tmp_path: Path) -> None:
    routes = {"/big": (200, {}, b"x" * 2048)}
    with serve_routes(routes) as base:
        with pytest.raises(MediaError, match="limit"):
            download(f"{base}/big", tmp_path / "big", max_bytes=1000, allowed=LOOPBACK)
        with pytest.raises(MediaError, match="404"):
            download(f"{base}/nothing", tmp_path / "none", max_bytes=1000, allowed=LOOPBACK)
    assert list(tmp_path.iterdir()) == []
