"""The one table of address ranges a user-supplied URL may not reach.

From the IANA IPv4 and IPv6 Special-Purpose Address Registries (entries that are not
"globally reachable", as of 2026), plus multicast and the IPv6 ranges outside global unicast
(2000::/3). Written out rather than taken from `ipaddress.is_global`, whose answer depends on
the Python release (3.11 still calls 192.0.0.0/24 and 3fff::/20 global).

A few globally reachable anycast assignments inside blocked blocks (192.0.0.9-10 in
192.0.0.0/24; AMT, AS112 and ORCHIDv2 inside 2001::/23) are blocked with their block: no media
server lives there. IPv6 addresses that carry an IPv4 one (6to4, NAT64, Teredo, mapped) are
judged by that IPv4 address in `clipforge.fetch.is_allowed_address`, before this table.
"""

from __future__ import annotations

import ipaddress

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# (network, what it is, where it is defined)
NON_PUBLIC: tuple[tuple[Network, str, str], ...] = tuple(
    (ipaddress.ip_network(cidr), name, source)
    for cidr, name, source in (
        ("0.0.0.0/8", "this network", "RFC 791"),
        ("10.0.0.0/8", "private use", "RFC 1918"),
        ("100.64.0.0/10", "shared address space (CGN)", "RFC 6598"),
        ("127.0.0.0/8", "loopback", "RFC 1122"),
        ("169.254.0.0/16", "link local (cloud metadata)", "RFC 3927"),
        ("172.16.0.0/12", "private use", "RFC 1918"),
        ("192.0.0.0/24", "IETF protocol assignments", "RFC 6890"),
        ("192.0.2.0/24", "documentation (TEST-NET-1)", "RFC 5737"),
        ("192.88.99.0/24", "deprecated 6to4 relay anycast", "RFC 7526"),
        ("192.168.0.0/16", "private use", "RFC 1918"),
        ("198.18.0.0/15", "benchmarking", "RFC 2544"),
        ("198.51.100.0/24", "documentation (TEST-NET-2)", "RFC 5737"),
        ("203.0.113.0/24", "documentation (TEST-NET-3)", "RFC 5737"),
        ("224.0.0.0/4", "multicast", "RFC 5771"),
        ("240.0.0.0/4", "reserved, and limited broadcast", "RFC 1112, RFC 919"),
        ("::/128", "unspecified address", "RFC 4291"),
        ("::1/128", "loopback", "RFC 4291"),
        ("64:ff9b:1::/48", "IPv4-IPv6 translation, local use", "RFC 8215"),
        ("100::/64", "discard-only", "RFC 6666"),
        ("100:0:0:1::/64", "dummy IPv6 prefix", "RFC 9780"),
        ("2001::/23", "IETF protocol assignments", "RFC 2928"),
        ("2001:db8::/32", "documentation", "RFC 3849"),
        ("3fff::/20", "documentation", "RFC 9637"),
        ("5f00::/16", "segment routing (SRv6) SIDs", "RFC 9602"),
        ("fc00::/7", "unique local", "RFC 4193"),
        ("fe80::/10", "link-local unicast", "RFC 4291"),
        ("fec0::/10", "site-local unicast (deprecated)", "RFC 3879"),
        ("ff00::/8", "multicast", "RFC 4291"),
    )
)
# Everything in IPv6 outside this block is unallocated or special (IANA IPv6 address space).
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")


def non_public_range(ip: Address) -> str | None:
    """The name of the non-public range `ip` is in ("private use (RFC 1918)"), or None."""
    for network, name, source in NON_PUBLIC:
        if ip.version == network.version and ip in network:
            return f"{name} ({source})"
    if isinstance(ip, ipaddress.IPv6Address) and ip not in _GLOBAL_UNICAST_V6:
        return "outside IPv6 global unicast (2000::/3)"
    return None


def is_public(ip: Address) -> bool:
    """Whether `ip` is in no range of `NON_PUBLIC` (and, for IPv6, in global unicast)."""
    return non_public_range(ip) is None
