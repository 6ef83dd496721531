"""Which IP addresses stemhook may connect to when it fetches a file that a callback names.

Anyone who knows the callback URL can post one, so the address of a result file is chosen by a
stranger: fetched blindly, it would make stemhook reach its own loopback, the private network
around it or the cloud metadata service (server-side request forgery). An address is admitted
only when it is globally routable or inside a network the operator named in
STEMHOOK_FETCH_ALLOW_NETWORKS, never when it is the unspecified address; `admissible` refuses the
networks that would switch the guard off.

The guard is pure and judges addresses, never a URL's host text: it must be applied to the
address the resolver (getaddrinfo) returned and the connection is actually made to, and again on
every redirect hop. getaddrinfo reads 2130706433, 127.1, 0x7f.0.0.1 and 0177.0.0.1 as 127.0.0.1,
all of which `ipaddress` refuses to parse: a check of the host text that takes them for names
lets loopback through. And a name may resolve to a public address when checked and to a private
one when connected to.

An IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::/96) address leads to the IPv4 address it
carries, so it is judged by it; the deprecated forms that carry one (IPv4-compatible ::a.b.c.d,
6to4 2002::/16) are refused whatever they carry, as no file host uses them. The standard
library's classification (`is_global` and friends) is the base; the blocks it classifies
differently on Python 3.11, 3.12 and 3.13 (and their patch releases) are decided here first, so
that every supported Python answers alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import TypeAlias

IPAddress: TypeAlias = IPv4Address | IPv6Address
IPNetwork: TypeAlias = IPv4Network | IPv6Network
_Test: TypeAlias = Callable[[IPAddress], bool]

_NAT64 = IPv6Network("64:ff9b::/96")
_IPV4_MAPPED = IPv6Network("::ffff:0:0/96")
# Where a cloud instance asks for its credentials and configuration: the metadata service of AWS,
# Google Cloud and Azure, Azure's platform address (a public one: wireserver, DNS, DHCP), and
# AWS's metadata service over IPv6.
_CLOUD_METADATA = ("169.254.169.254/32", "168.63.129.16/32", "fd00:ec2::254/128")
_METADATA = tuple(ip_network(cidr).network_address for cidr in _CLOUD_METADATA)
# A NAT64 address leads to the IPv4 address it carries: it names the metadata service too.
_METADATA_AND_NAT64 = _METADATA + tuple(
    IPv6Address(int(_NAT64.network_address) | int(address))
    for address in _METADATA
    if isinstance(address, IPv4Address)
)


def why_refused(address: IPAddress, *, admitted: Sequence[IPNetwork]) -> str | None:
    """Why stemhook must not connect to `address`, or None when it may.

    `address` is one the resolver (getaddrinfo) returned, the one the connection is made to,
    never one parsed from a URL's host (see the module's docstring): anything but an address
    object raises TypeError.

    `admitted` are the operator's networks: an address inside one is allowed whatever it is,
    but for the unspecified address (or one carrying 0.0.0.0), which reaches every local listener
    of the host it is sent to.
    """
    if is_admitted(address, admitted=admitted):
        return None
    embedded = _embedded_ipv4(address)
    judged = address if embedded is None else embedded[0]
    kind = _kind(judged)
    if kind is None:
        return None
    return f"{address} is {kind}" if embedded is None else f"{embedded[1]}, {kind}"


def is_admitted(address: IPAddress, *, admitted: Sequence[IPNetwork]) -> bool:
    """Whether `address` lies in one of the operator's networks, as `why_refused` matches them.

    Plain http goes only there (app/fetching/connect.py). Never the unspecified address, nor
    one carrying 0.0.0.0; anything but an address object raises TypeError, as in `why_refused`.
    """
    if not isinstance(address, IPv4Address | IPv6Address):
        raise TypeError(f"judge the address getaddrinfo returned, not {address!r}")
    embedded = _embedded_ipv4(address)
    judged = address if embedded is None else embedded[0]
    return not judged.is_unspecified and _admitted(address, admitted)


def admissible(network: IPNetwork) -> IPNetwork:
    """`network` as the guard matches it, or ValueError saying why an operator may not admit it.

    An IPv4-mapped network (::ffff:a.b.c.d/n) becomes the IPv4 network it names, as the guard
    matches IPv4 addresses only against IPv4 networks. Refused are the networks that would switch
    the guard off, or not do what they say: a zone id, which matching ignores; all addresses of
    IPv4 or IPv6; an IPv6 network around all of IPv4-mapped space, which reads as admitting all of
    IPv4; and a network around a cloud metadata address, which may be admitted only alone.
    """
    if isinstance(network, IPv6Network):
        if (zone := network.network_address.scope_id) is not None:
            raise ValueError(
                f"matching ignores its zone id (%{zone}), so it would be admitted on every link"
            )
        if network.subnet_of(_IPV4_MAPPED):
            ipv4 = int(network.network_address) & 0xFFFF_FFFF
            network = IPv4Network((ipv4, network.prefixlen - 96))
    if network.prefixlen == 0:
        raise ValueError(f"it admits every IPv{network.version} address, switching the guard off")
    if isinstance(network, IPv6Network) and network.supernet_of(_IPV4_MAPPED):
        raise ValueError(
            # Written out: Python 3.13 writes the network ::ffff:0.0.0.0/96.
            "it holds ::ffff:0:0/96, all of IPv4 in IPv4-mapped form, which it would not admit:"
            " name IPv4 networks in their IPv4 form"
        )
    for metadata in _METADATA_AND_NAT64:
        if metadata in network and network.num_addresses > 1:
            raise ValueError(
                f"{why_refused(metadata, admitted=())}, which may be admitted only alone"
                f" ({metadata}/{network.max_prefixlen})"
            )
    return network


def _admitted(address: IPAddress, admitted: Sequence[IPNetwork]) -> bool:
    # `ipaddress` finds no address in a network of the other version (tests pin it for ::/0).
    peer = _peer(address)
    return any(peer in network for network in admitted)


def _peer(address: IPAddress) -> IPAddress:
    """The address as a socket reaches it: ::ffff:a.b.c.d is a.b.c.d, reached by IPv4.

    The IPv4 form is matched only against IPv4 networks: as ::ffff:a.b.c.d every IPv4 address also
    lies in IPv6 networks such as ::/0, whose admission would admit all of IPv4. A NAT64 address
    reaches its IPv4 address through a translator, whose own loopback or private network is not the
    one the operator admitted: it stays an IPv6 address here.
    """
    mapped = address.ipv4_mapped if isinstance(address, IPv6Address) else None
    return address if mapped is None else mapped


def _embedded_ipv4(address: IPAddress) -> tuple[IPv4Address, str] | None:
    """The IPv4 address that packets to `address` end up at, and the words saying so.

    An IPv4-mapped address is written as Python 3.13 writes it, whichever Python runs (earlier
    ones write ::ffff:7f00:1).
    """
    if isinstance(address, IPv4Address):
        return None
    if (mapped := address.ipv4_mapped) is not None:
        return mapped, f"::ffff:{mapped} embeds {mapped} (IPv4-mapped)"
    if address in _NAT64:
        nat64 = IPv4Address(int(address) & 0xFFFF_FFFF)
        return nat64, f"{address} embeds {nat64} (NAT64)"
    return None


def _kind(address: IPAddress) -> str | None:
    """What makes `address` one not to connect to, or None for a globally routable address."""
    return next((kind for refuses, kind in _REFUSED if refuses(address)), None)


def _within(*cidrs: str) -> _Test:
    networks = tuple(ip_network(cidr) for cidr in cidrs)
    return lambda address: any(address in network for network in networks)


# In order: the first that applies names the refusal, so narrow blocks come before the
# standard library's broad classes that contain them (metadata before link-local, ...).
_REFUSED: tuple[tuple[_Test, str], ...] = (
    (lambda a: a.is_unspecified, "the unspecified address"),
    (lambda a: a.is_loopback, "a loopback address"),
    (_within("0.0.0.0/8"), "a 'this network' address (0.0.0.0/8)"),
    (_within(*_CLOUD_METADATA), "a cloud metadata address"),
    (lambda a: a.is_link_local, "a link-local address"),
    (lambda a: isinstance(a, IPv6Address) and a.is_site_local, "a site-local address"),
    (_within("100.64.0.0/10"), "a carrier-grade NAT address (100.64.0.0/10)"),
    (_within("fc00::/7"), "a unique-local address"),
    (lambda a: a.is_multicast, "a multicast address"),
    (_within("255.255.255.255/32"), "the limited broadcast address"),
    (
        _within("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20"),
        "a documentation address",
    ),
    (_within("198.18.0.0/15", "2001:2::/48"), "a benchmarking address"),
    (_within("100::/64"), "a discard-only address"),
    # :: and ::1 are caught above: IPv6's own unspecified and loopback addresses, not compatible.
    (_within("::/96"), "an IPv4-compatible address (deprecated)"),
    (_within("2002::/16"), "a 6to4 address (deprecated)"),
    # Teredo tunnels to a client behind a NAT through a relay: neither the server nor the
    # (obfuscated) client address it carries says where packets end, and no file host lives there.
    (_within("2001::/32"), "a Teredo address"),
    # Where the IPv4 address sits in a local-use NAT64 prefix is the operator's choice (RFC 8215).
    (_within("64:ff9b:1::/48"), "a local-use NAT64 address"),
    # The standard library's answer inside these blocks changed in 3.13 (CVE-2024-4032, in later
    # patch releases of 3.11 and 3.12 too), a few anycast services becoming global: all refused.
    (_within("192.0.0.0/24", "2001::/23"), "in an IETF protocol assignment block"),
    (lambda a: a.is_reserved, "a reserved address"),
    # The rule itself: of the blocks the standard library holds not global, only the private
    # ones of RFC 1918 are left by now, and any block a later Python adds would be caught here.
    (lambda a: not a.is_global, "a private address"),
)
