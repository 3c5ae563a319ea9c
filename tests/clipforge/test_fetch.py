"""SSRF guard and bounded downloads, against a real local HTTP server."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clipforge.errors import MediaError, ValidationFailed
from clipforge.fetch import (
    REFUSED,
    check_url,
    download,
    embedded_ipv4,
    is_allowed_address,
    parse_networks,
)
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

    with pytest.raises(ValidationFailed, match="source URL refused"):
        check_url("https://media.example.com/v.mp4", resolver=evil_dns)


@pytest.mark.parametrize(
    "address",
    # Not global in the IANA special-purpose registries, yet `is_global` on Python 3.11 says so
    # (or, for fec0::/10, it is outside global unicast): each was accepted before issue #28.
    ["[fec0::1]", "192.0.0.8", "[3fff::1]", "[5f00::1]", "[2001:2::1]", "224.0.0.1"],
)
def test_special_purpose_ranges_are_refused(address: str) -> None:
    with pytest.raises(ValidationFailed, match="source URL refused"):
        check_url(f"http://{address}/x.mp4")


@pytest.mark.parametrize(
    "url",
    [
        "http://.127.0.0.1/",
        "http://127..0.0.1/",
        f"http://{'a' * 64}.example.com/",
        f"http://{'a.' * 127}com/",
        "http://93.184.216.34:0/x.mp4",
    ],
)
def test_malformed_hosts_and_port_zero_are_refused_before_resolving(url: str) -> None:
    def no_dns(host: str, port: int) -> list[str]:
        raise AssertionError("resolved a malformed URL")

    with pytest.raises(ValidationFailed, match=r"host|port"):
        check_url(url, resolver=no_dns)


def test_refusals_that_depend_on_resolution_say_the_same() -> None:
    answers = {"internal.example": ["10.0.0.5"], "gone.example": []}
    messages = set()
    for host in answers:
        with pytest.raises(ValidationFailed) as refused:
            check_url(f"https://{host}/v.mp4", resolver=lambda h, p: answers[h])
        messages.add(str(refused.value))
    assert messages == {REFUSED}


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
            with pytest.raises(ValidationFailed, match="source URL refused"):
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


# --- issue #14: control characters, IPv4 inside IPv6, property tests --------------------------


def _public_dns(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]  # a stub: the pure checker never resolves anything for real


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.216.34\x00.evil/x",  # a resolver would cut the name at the NUL
        "http://media.example.com\x00/x",
        "http://media.example.com/a\x00b",
        "http://media.example.com/a\nb",
        "http://media.example.com/\x7f",
    ],
)
def test_control_characters_are_refused_before_resolving(url: str) -> None:
    # (a space in a path is tolerated, as before: the HTTP client percent-encodes it)
    asked: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["93.184.216.34"]

    with pytest.raises(ValidationFailed, match="control characters"):
        check_url(url, resolver=resolver)
    assert asked == []


@pytest.mark.parametrize(
    "address",
    [
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002:0a00:0001::",  # 6to4 of 10.0.0.1
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::c0a8:1",  # local-use NAT64 of 192.168.0.1
        "::ffff:169.254.169.254",  # IPv4-mapped
        "::10.0.0.1",  # IPv4-compatible
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo, client 192.0.2.45
        "2001:0:7f00:1::1",  # Teredo with a loopback server
    ],
)
def test_ipv4_embedded_in_ipv6_is_unwrapped(address: str) -> None:
    assert not is_allowed_address(address)
    with pytest.raises(ValidationFailed, match="source URL refused"):
        check_url("https://media.example.com/v.mp4", resolver=lambda h, p: [address])
    with pytest.raises(ValidationFailed):
        check_url(f"http://[{address}]/latest/meta-data/", resolver=lambda h, p: [address])


def test_embedded_public_ipv4_and_allowed_networks_pass() -> None:
    assert is_allowed_address("2002:5db8:d822::1")  # 6to4 of 93.184.216.34
    assert is_allowed_address("64:ff9b::5db8:d822")
    assert is_allowed_address("::ffff:93.184.216.34")
    assert is_allowed_address("2002:7f00:1::1", parse_networks(["2002::/16"]))
    assert is_allowed_address("::ffff:127.0.0.1", LOOPBACK)


def test_refused_address_fails_the_download_as_not_retryable(tmp_path: Path) -> None:
    # Refused before any connection, as a non-retryable error: the job fails at once.
    with pytest.raises(ValidationFailed) as refused:
        download("http://[2002:7f00:1::1]:9/x", tmp_path / "x", max_bytes=10)
    assert not refused.value.retryable
    assert not (tmp_path / "x").exists()


_v4 = st.ip_addresses(v=4)


@settings(max_examples=300, deadline=None)
@given(inner=_v4)
def test_every_ipv6_wrapping_is_judged_by_its_ipv4(inner: ipaddress.IPv4Address) -> None:
    value = int(inner)
    wrapped = [
        ipaddress.IPv6Address((0xFFFF << 32) | value),  # mapped
        ipaddress.IPv6Address((0x2002 << 112) | (value << 80)),  # 6to4
        ipaddress.IPv6Address((0x64FF9B << 96) | value),  # NAT64
    ]
    for ip in wrapped:
        if not is_allowed_address(str(inner)):
            assert not is_allowed_address(str(ip)), (inner, ip)


@settings(max_examples=300, deadline=None)
@given(address=st.ip_addresses())
def test_allowed_addresses_are_public_and_unwrap_to_public(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    if not is_allowed_address(str(address)):
        return
    assert address.is_global or isinstance(address, ipaddress.IPv6Address)
    if isinstance(address, ipaddress.IPv6Address):
        for inner in embedded_ipv4(address):
            assert is_allowed_address(str(inner))


@settings(max_examples=300, deadline=None)
@given(url=st.text(max_size=120) | st.from_regex(r"\Ahttps?://[^/]{0,30}/.{0,30}\Z"))
def test_checker_refuses_or_returns_a_clean_public_url(url: str) -> None:
    try:
        checked = check_url(url, resolver=_public_dns)
    except ValidationFailed:
        return
    assert checked.url.startswith(("http://", "https://"))
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in checked.url)
    assert " " not in checked.host
    assert is_allowed_address(checked.address)
