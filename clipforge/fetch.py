"""SSRF-safe fetching of user-supplied media URLs.

A URL is only fetched if every address its host resolves to is a public address: in no range
of `clipforge.address_ranges.NON_PUBLIC` (the IANA special-purpose registries: loopback,
private, link-local with cloud metadata at 169.254.169.254, documentation, multicast, ...).
The connection then goes to the address that was checked (the Host header and TLS SNI carry the
name), so a DNS answer that changes between check and connect (DNS rebinding) cannot redirect
it. Redirects are followed by hand and every hop is checked the same way.

A refusal that depends on name resolution says only `REFUSED` to the client (whether a name
does not resolve or resolves to an internal address would tell a key holder which internal
names exist); the server log has the details.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from clipforge.address_ranges import is_public
from clipforge.errors import MediaError, TransientError, ValidationFailed

Resolver = Callable[[str, int], list[str]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_MAX_URL_CHARS = 2048
log = logging.getLogger(__name__)
# The one answer to a URL refused for where its host resolves (or that it does not).
REFUSED = (
    "source URL refused: its host must resolve to public addresses only "
    "(FETCH_ALLOW_CIDRS lists private networks an operator trusts)"
)


def system_resolver(host: str, port: int) -> list[str]:
    """All addresses of `host` from the system resolver (none when it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:  # UnicodeError: IDNA refuses a label
        log.info("source URL host does not resolve", extra={"host": host, "error": str(exc)})
        return []
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


# NAT64 prefixes (RFC 6052 well-known, RFC 8215 local-use): the IPv4 address is the last 32 bits.
_NAT64 = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
)
# Deprecated IPv4-compatible form ::a.b.c.d (excluding :: and ::1, which are their own thing).
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")
# C0 and C1 controls and DEL: a resolver may cut a name at a NUL (`93.184.216.34\x00.evil`
# checked as its first part), and they have no place in a URL anyway.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A host name or IP literal as a resolver should see it (IDNA names arrive already encoded).
_HOST = re.compile(r"^[A-Za-z0-9._:\[\]-]+$")
_MAX_HOST_CHARS = 253  # DNS: 255 octets on the wire
_MAX_LABEL_CHARS = 63


def _host_error(host: str) -> str | None:
    """Why `host` (from `urlsplit(...).hostname`) is not a host name or IP literal, or None."""
    if not _HOST.match(host):
        return "is not a valid host name"
    if ":" in host:  # urlsplit took it from brackets: it must be an IPv6 address
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return "is not a valid IPv6 address"
        return None
    if len(host) > _MAX_HOST_CHARS:
        return f"is longer than {_MAX_HOST_CHARS} characters"
    if any(not 0 < len(label) <= _MAX_LABEL_CHARS for label in host.split(".")):
        return f"has an empty label or one over {_MAX_LABEL_CHARS} characters"
    return None


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries and that a router would deliver to.

    IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), 6to4 (2002:AABB:CCDD::),
    Teredo (2001::/32: server and de-obfuscated client) and NAT64 (64:ff9b::/96, 64:ff9b:1::/48).
    Each must pass the same check as a plain IPv4 address, or the IPv6 spelling is a bypass.
    """
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if any(ip in net for net in _NAT64):
        found.append(low32)
    if ip in _V4_COMPATIBLE and int(ip) > 1:
        found.append(low32)
    return found


def is_allowed_address(address: str, allowed: tuple[Network, ...] = ()) -> bool:
    """Whether a connection to `address` is allowed: public, or in an operator's `allowed`.

    IPv6 addresses that embed an IPv4 one are judged by both: every embedded address must pass.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False  # not an address at all (a resolver stub or a broken answer)
    if any(ip in net for net in allowed):
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if ip.ipv4_mapped is not None:
            # A mapped address is the IPv4 host itself; judge it by that alone.
            return any(inner[0] in net for net in allowed) or is_public(inner[0])
        if inner and not all(any(v4 in net for net in allowed) or is_public(v4) for v4 in inner):
            return False
        if inner:
            # 6to4, NAT64 and Teredo prefixes are not "global" themselves; the inner host decides.
            return True
    return is_public(ip)


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
    url = url.strip()
    if _CONTROL.search(url):
        raise ValidationFailed("source URL contains control characters")
    try:
        parts = urlsplit(url.strip())
        explicit_port = parts.port
    except ValueError as exc:
        raise ValidationFailed(f"source URL is malformed: {exc}") from None
    if explicit_port == 0:
        raise ValidationFailed("source URL port must be between 1 and 65535")
    port = explicit_port or (443 if parts.scheme == "https" else 80)
    if parts.scheme not in ("http", "https"):
        raise ValidationFailed("source URL must use http or https")
    if parts.username or parts.password:
        raise ValidationFailed("source URL must not contain credentials")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValidationFailed("source URL has no host")
    if (problem := _host_error(host)) is not None:
        raise ValidationFailed(f"source URL host {host!r} {problem}")
    addresses = resolver(host, port)
    blocked = [a for a in addresses if not is_allowed_address(a, allowed)]
    if not addresses or blocked:
        # INFO: a client's mistake, not the server's (and the CLI prints no log line for it).
        log.info(
            "source URL refused",
            extra={"host": host, "addresses": addresses, "blocked": blocked},
        )
        raise ValidationFailed(REFUSED)
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
