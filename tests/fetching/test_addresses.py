"""The address guard refuses every non-global class by name, judges an IPv4-mapped or NAT64
address by the IPv4 one it carries, and answers alike on Python 3.11, 3.12 and 3.13."""

from __future__ import annotations

import socket
from ipaddress import ip_address, ip_network

import pytest

from app.fetching.addresses import is_admitted, why_refused


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard decides on addresses alone: any socket or name lookup here fails the test."""

    def tripped(*args: object, **kwargs: object) -> None:
        pytest.fail("the address guard opened a socket or resolved a name")

    monkeypatch.setattr(socket.socket, "__init__", tripped)
    for lookup in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
        monkeypatch.setattr(socket, lookup, tripped)


REFUSED = [
    ("0.0.0.0", "0.0.0.0 is the unspecified address"),
    ("::", ":: is the unspecified address"),
    ("127.0.0.1", "127.0.0.1 is a loopback address"),
    ("127.255.255.254", "127.255.255.254 is a loopback address"),
    ("::1", "::1 is a loopback address"),
    ("0.1.2.3", "0.1.2.3 is a 'this network' address (0.0.0.0/8)"),
    ("169.254.169.254", "169.254.169.254 is a cloud metadata address"),
    ("fd00:ec2::254", "fd00:ec2::254 is a cloud metadata address"),
    # Azure's platform address is a public one.
    ("168.63.129.16", "168.63.129.16 is a cloud metadata address"),
    ("169.254.1.1", "169.254.1.1 is a link-local address"),
    ("fe80::1", "fe80::1 is a link-local address"),
    ("fe80::1%eth0", "fe80::1%eth0 is a link-local address"),
    ("fec0::1", "fec0::1 is a site-local address"),
    ("100.64.0.1", "100.64.0.1 is a carrier-grade NAT address (100.64.0.0/10)"),
    ("100.127.255.255", "100.127.255.255 is a carrier-grade NAT address (100.64.0.0/10)"),
    ("fc00::1", "fc00::1 is a unique-local address"),
    ("fdff:ffff::1", "fdff:ffff::1 is a unique-local address"),
    ("224.0.0.1", "224.0.0.1 is a multicast address"),
    ("239.255.255.250", "239.255.255.250 is a multicast address"),
    ("ff02::1", "ff02::1 is a multicast address"),
    ("255.255.255.255", "255.255.255.255 is the limited broadcast address"),
    ("240.0.0.1", "240.0.0.1 is a reserved address"),
    ("5f00::1", "5f00::1 is a reserved address"),
    # IPv4-translated (SIIT, ::ffff:0:a.b.c.d): not unwrapped, refused with the rest of ::/8.
    ("::ffff:0:808:808", "::ffff:0:808:808 is a reserved address"),
    ("192.0.2.1", "192.0.2.1 is a documentation address"),
    ("198.51.100.7", "198.51.100.7 is a documentation address"),
    ("203.0.113.9", "203.0.113.9 is a documentation address"),
    ("2001:db8::1", "2001:db8::1 is a documentation address"),
    ("3fff::1", "3fff::1 is a documentation address"),
    ("198.18.0.1", "198.18.0.1 is a benchmarking address"),
    ("198.19.255.255", "198.19.255.255 is a benchmarking address"),
    ("2001:2::1", "2001:2::1 is a benchmarking address"),
    ("100::1", "100::1 is a discard-only address"),
    ("10.0.0.1", "10.0.0.1 is a private address"),
    ("172.16.0.1", "172.16.0.1 is a private address"),
    ("172.31.255.255", "172.31.255.255 is a private address"),
    ("192.168.1.1", "192.168.1.1 is a private address"),
    ("192.0.0.170", "192.0.0.170 is in an IETF protocol assignment block"),
    # Teredo is refused outright, whatever server (65.54.227.120) and client it carries.
    (
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2 is a Teredo address",
    ),
    ("64:ff9b:1::808:808", "64:ff9b:1::808:808 is a local-use NAT64 address"),
    # The deprecated forms are refused whatever IPv4 address they carry, a public one too.
    ("::8.8.8.8", "::808:808 is an IPv4-compatible address (deprecated)"),
    ("::127.0.0.1", "::7f00:1 is an IPv4-compatible address (deprecated)"),
    ("::255.255.255.255", "::ffff:ffff is an IPv4-compatible address (deprecated)"),
    ("::0.0.0.2", "::2 is an IPv4-compatible address (deprecated)"),
    ("2002:a9fe:a9fe::1", "2002:a9fe:a9fe::1 is a 6to4 address (deprecated)"),
    (
        "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff is a 6to4 address (deprecated)",
    ),
]

# The standard library classifies these differently on 3.11.7 and 3.12.1 than on 3.13 (and on
# the 3.11 and 3.12 patch releases that took the fix of CVE-2024-4032); the guard does not.
CLASSIFIED_DIFFERENTLY_BY_PYTHON = [
    # global before 3.13
    ("192.0.0.8", "192.0.0.8 is in an IETF protocol assignment block"),
    ("64:ff9b:1::1", "64:ff9b:1::1 is a local-use NAT64 address"),
    ("2002:7f00:1::1", "2002:7f00:1::1 is a 6to4 address (deprecated)"),
    ("2002:808:808::1", "2002:808:808::1 is a 6to4 address (deprecated)"),
    # global from 3.13 (anycast and identifier blocks inside 2001::/23), and 192.0.0.9 global in
    # all three though its block is refused whole
    ("2001:1::1", "2001:1::1 is in an IETF protocol assignment block"),
    ("2001:3::1", "2001:3::1 is in an IETF protocol assignment block"),
    ("2001:4:112::1", "2001:4:112::1 is in an IETF protocol assignment block"),
    ("2001:20::1", "2001:20::1 is in an IETF protocol assignment block"),
    ("2001:30::1", "2001:30::1 is in an IETF protocol assignment block"),
    ("192.0.0.9", "192.0.0.9 is in an IETF protocol assignment block"),
    # is_loopback false before 3.13, and written ::ffff:7f00:1 there
    ("::ffff:127.0.0.1", "::ffff:127.0.0.1 embeds 127.0.0.1 (IPv4-mapped), a loopback address"),
]

EMBEDDED = [
    (
        "::ffff:169.254.169.254",
        "::ffff:169.254.169.254 embeds 169.254.169.254 (IPv4-mapped), a cloud metadata address",
    ),
    ("::ffff:10.0.0.1", "::ffff:10.0.0.1 embeds 10.0.0.1 (IPv4-mapped), a private address"),
    (
        "64:ff9b::168.63.129.16",
        "64:ff9b::a83f:8110 embeds 168.63.129.16 (NAT64), a cloud metadata address",
    ),
    ("::ffff:0.0.0.0", "::ffff:0.0.0.0 embeds 0.0.0.0 (IPv4-mapped), the unspecified address"),
    ("64:ff9b::127.0.0.1", "64:ff9b::7f00:1 embeds 127.0.0.1 (NAT64), a loopback address"),
    (
        "64:ff9b::100.64.0.1",
        "64:ff9b::6440:1 embeds 100.64.0.1 (NAT64), a carrier-grade NAT address (100.64.0.0/10)",
    ),
]

ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "11.0.0.1",
    "100.63.255.255",
    "100.128.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "192.0.1.255",
    "223.255.255.255",
    "168.63.129.15",
    "168.63.129.17",
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "2a00:1450:4001::1",
    "::ffff:8.8.8.8",
    "64:ff9b::8.8.8.8",
    "2003::1",
]


@pytest.mark.parametrize(
    ("address", "reason"), REFUSED + CLASSIFIED_DIFFERENTLY_BY_PYTHON + EMBEDDED
)
def test_an_address_is_refused_with_a_reason_naming_its_class(address: str, reason: str) -> None:
    assert why_refused(ip_address(address), admitted=()) == reason


@pytest.mark.parametrize("address", ALLOWED)
def test_a_globally_routable_address_is_allowed(address: str) -> None:
    assert why_refused(ip_address(address), admitted=()) is None


@pytest.mark.parametrize(
    ("admitted", "address", "reason"),
    [
        (["127.0.0.2/32"], "127.0.0.2", None),
        (["127.0.0.2/32"], "127.0.0.3", "127.0.0.3 is a loopback address"),
        (["127.0.0.2/32"], "::1", "::1 is a loopback address"),
        (["10.0.0.0/8", "fd12::/16"], "fd12::1", None),
        (["10.0.0.0/8", "fd12::/16"], "10.1.2.3", None),
        (["10.0.0.0/8", "fd12::/16"], "fc00::1", "fc00::1 is a unique-local address"),
        (["fe80::/10"], "fe80::1%eth0", None),
        (["0.0.0.0/8"], "0.1.2.3", None),
        (["::/127"], "::1", None),
        (["2001::/32"], "2001:0:4136:e378:8000:63bf:3fff:fdd2", None),
        # An IPv4 address and its IPv4-mapped form are one peer, matched by its IPv4 form.
        (["127.0.0.0/8"], "::ffff:127.0.0.1", None),
        # An IPv6 network admits neither form, written as IPv4-mapped too: the setting takes
        # ::ffff:127.0.0.0/104 as 127.0.0.0/8 (tests/test_config.py).
        (["::ffff:127.0.0.0/104"], "127.0.0.1", "127.0.0.1 is a loopback address"),
        (
            ["::ffff:127.0.0.0/104"],
            "::ffff:127.0.0.1",
            "::ffff:127.0.0.1 embeds 127.0.0.1 (IPv4-mapped), a loopback address",
        ),
        # NAT64 reaches the IPv4 address through a translator, whose loopback is not the one
        # admitted, and the deprecated forms are refused whatever they carry: only an IPv6
        # network containing them admits them.
        (
            ["127.0.0.0/8"],
            "64:ff9b::127.0.0.1",
            "64:ff9b::7f00:1 embeds 127.0.0.1 (NAT64), a loopback address",
        ),
        (["127.0.0.0/8"], "::127.0.0.1", "::7f00:1 is an IPv4-compatible address (deprecated)"),
        (["127.0.0.0/8"], "2002:7f00:1::1", "2002:7f00:1::1 is a 6to4 address (deprecated)"),
        (["64:ff9b::/96"], "64:ff9b::127.0.0.1", None),
        (["2002::/16"], "2002:7f00:1::1", None),
    ],
)
def test_an_admitted_network_allows_what_it_contains_and_nothing_more(
    admitted: list[str], address: str, reason: str | None
) -> None:
    networks = [ip_network(cidr) for cidr in admitted]

    assert why_refused(ip_address(address), admitted=networks) == reason


@pytest.mark.parametrize(
    ("admitted", "address", "reason"),
    [
        (["0.0.0.0/8"], "0.0.0.0", "0.0.0.0 is the unspecified address"),
        (["::/127"], "::", ":: is the unspecified address"),
        (
            ["0.0.0.0/32"],
            "::ffff:0.0.0.0",
            "::ffff:0.0.0.0 embeds 0.0.0.0 (IPv4-mapped), the unspecified address",
        ),
        (
            ["64:ff9b::/96"],
            "64:ff9b::",
            "64:ff9b:: embeds 0.0.0.0 (NAT64), the unspecified address",
        ),
    ],
)
def test_the_unspecified_address_is_refused_even_inside_an_admitted_network(
    admitted: list[str], address: str, reason: str
) -> None:
    networks = [ip_network(cidr) for cidr in admitted]

    assert why_refused(ip_address(address), admitted=networks) == reason


@pytest.mark.parametrize(
    ("admitted", "address", "inside"),
    [
        (["127.0.0.0/8"], "127.0.0.2", True),
        (["127.0.0.0/8"], "::ffff:127.0.0.2", True),
        (["127.0.0.0/8"], "64:ff9b::127.0.0.2", False),
        (["8.8.8.0/24"], "8.8.8.8", True),
        # Allowed by the guard, as a global address, but not admitted: plain http may not go there.
        ([], "8.8.8.8", False),
        (["0.0.0.0/8"], "0.0.0.0", False),
    ],
)
def test_is_admitted_matches_as_the_guard_does_never_the_unspecified_address(
    admitted: list[str], address: str, inside: bool
) -> None:
    networks = [ip_network(cidr) for cidr in admitted]

    assert is_admitted(ip_address(address), admitted=networks) is inside
    with pytest.raises(TypeError, match="judge the address getaddrinfo returned"):
        is_admitted(address, admitted=networks)  # type: ignore[arg-type]


@pytest.mark.parametrize("ipv6", ["::/0", "::/1", "::/8", "::/80", "::ffff:0:0/96"])
@pytest.mark.parametrize(
    "address", ["169.254.169.254", "0.0.0.0", "127.0.0.1", "10.0.0.1", "::ffff:127.0.0.1"]
)
def test_an_ipv6_network_admits_no_ipv4_address_even_in_its_ipv4_mapped_form(
    ipv6: str, address: str
) -> None:
    refused = why_refused(ip_address(address), admitted=())

    assert refused is not None
    assert why_refused(ip_address(address), admitted=[ip_network(ipv6)]) == refused


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "2130706433", "127.1", "0x7f.0.0.1", "0177.0.0.1", 2130706433]
)
def test_a_hosts_text_is_refused_as_no_address_to_judge(host: str | int) -> None:
    """getaddrinfo reads all of these as 127.0.0.1: only the address it returns may be judged."""
    with pytest.raises(TypeError, match="judge the address getaddrinfo returned"):
        why_refused(host, admitted=())  # type: ignore[arg-type]


def test_a_socket_opened_here_would_fail_the_test() -> None:
    with pytest.raises(pytest.fail.Exception, match="opened a socket"):
        socket.socket()
    with pytest.raises(pytest.fail.Exception, match="resolved a name"):
        socket.getaddrinfo("localhost", 80)
