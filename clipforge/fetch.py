"""SSRF-safe fetching of user-supplied media URLs.

A URL is only fetched if every address its host resolves to is a public (global) address: no
loopback, private, link-local (cloud metadata at 169.254.169.254), multicast or reserved ranges.
The connection then goes to the address that was checked (the Host header and TLS SNI carry the
name), so a DNS answer that changes between check and connect (DNS rebinding) cannot redirect
it. Redirects are followed by hand and every hop is checked the same way.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from clipforge.errors import MediaError, TransientError, ValidationFailed

Resolver = Callable[[str, int], list[str]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_MAX_URL_CHARS = 2048


def system_resolver(host: str, port: int) -> list[str]:
    """All addresses of `host` from the system resolver."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValidationFailed(f"source URL host {host!r} does not resolve") from exc
    return sorted({str(info[4][0]) for info in infos})


@dataclass(frozen=True, slots=True)
class CheckedUrl:
    """A URL whose host resolved only to public addresses.

    Attributes:
        url: the URL as given (normalised).
        host: its host name.
        port: explicit or default port.
        address: the checked address to connect to.
    """

    url: str
    host: str
    port: int
    address: str


def _is_allowed(address: str, allowed: tuple[Network, ...]) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in allowed):
        return True
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local)


def parse_networks(cidrs: list[str] | tuple[str, ...]) -> tuple[Network, ...]:
    """CIDR strings to networks (operators may allow internal media hosts explicitly)."""
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def check_url(
    url: str, *, resolver: Resolver = system_resolver, allowed: tuple[Network, ...] = ()
) -> CheckedUrl:
    """Validate a user-supplied source URL; `ValidationFailed` with the reason if refused.

    `allowed` lists networks an operator explicitly trusts (empty by default: public only).
    """
    if len(url) > _MAX_URL_CHARS:
        raise ValidationFailed("source URL is too long")
    try:
        parts = urlsplit(url.strip())
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ValidationFailed(f"source URL is malformed: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValidationFailed("source URL must use http or https")
    if parts.username or parts.password:
        raise ValidationFailed("source URL must not contain credentials")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValidationFailed("source URL has no host")
    addresses = resolver(host, port)
    if not addresses:
        raise ValidationFailed(f"source URL host {host!r} does not resolve")
    blocked = [a for a in addresses if not _is_allowed(a, allowed)]
    if blocked:
        raise ValidationFailed(
            f"source URL host {host!r} resolves to a non-public address ({blocked[0]}); refused"
        )
    return CheckedUrl(url=urlunsplit(parts), host=host, port=port, address=addresses[0])


@dataclass(frozen=True, slots=True)
class Download:
    """A fetched file.

    Attributes:
        path: where the body was written.
        size: bytes written.
        final_url: URL after redirects.
        content_type: the server's Content-Type, if any.
    """

    path: Path
    size: int
    final_url: str
    content_type: str | None


def _pinned_request(client: httpx.Client, checked: CheckedUrl) -> httpx.Request:
    parts = urlsplit(checked.url)
    address = f"[{checked.address}]" if ":" in checked.address else checked.address
    netloc = f"{address}:{checked.port}"
    target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = checked.host if parts.port is None else f"{checked.host}:{parts.port}"
    return client.build_request(
        "GET",
        target,
        headers={"Host": host_header, "User-Agent": "ClipForge/0.1"},
        extensions={"sni_hostname": checked.host},
    )


def download(
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    timeout_s: float = 30.0,
    max_redirects: int = 5,
    resolver: Resolver = system_resolver,
    allowed: tuple[Network, ...] = (),
) -> Download:
    """Fetch `url` to `dest`, refusing non-public hosts (every hop) and bodies over `max_bytes`.

    Raises `ValidationFailed` for refused URLs, `MediaError` for 4xx answers and oversized
    bodies (retrying cannot help) and `TransientError` for network errors and 5xx (it can).
    """
    current = url
    timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        for _ in range(max_redirects + 1):
            checked = check_url(current, resolver=resolver, allowed=allowed)
            try:
                response = client.send(_pinned_request(client, checked), stream=True)
            except httpx.HTTPError as exc:
                raise TransientError(f"fetching source URL failed: {exc}") from exc
            try:
                if response.is_redirect:
                    location = response.headers.get("location", "")
                    current = str(httpx.URL(checked.url).join(location))
                    continue
                return _save_body(response, dest, max_bytes=max_bytes, final_url=checked.url)
            finally:
                response.close()
    raise MediaError(f"source URL redirected more than {max_redirects} times")


def _save_body(response: httpx.Response, dest: Path, *, max_bytes: int, final_url: str) -> Download:
    if response.status_code >= 500:
        raise TransientError(f"source URL answered {response.status_code}")
    if response.status_code >= 400:
        raise MediaError(f"source URL answered {response.status_code}")
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise MediaError(f"source is {int(declared)} bytes; the limit is {max_bytes}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    try:
        with dest.open("wb") as out:
            for chunk in response.iter_bytes(1024 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    raise MediaError(f"source is larger than the {max_bytes}-byte limit")
                out.write(chunk)
    except httpx.HTTPError as exc:
        dest.unlink(missing_ok=True)
        raise TransientError(f"source download interrupted: {exc}") from exc
    except MediaError:
        dest.unlink(missing_ok=True)
        raise
    return Download(dest, size, final_url, response.headers.get("content-type"))
