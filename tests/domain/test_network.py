"""The outbound network policy's pure part: address classification, literal host forms,
origins, and the one excerpt of a target's answer that may be shown."""

from __future__ import annotations

import ipaddress

import pytest

from tidings.domain.network import (
    EXCERPT_CHARS,
    OutboundPolicy,
    address_refusal,
    answer_excerpt,
    host_refusal,
    literal_address,
    origin_of,
    parse_origins,
)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fec0::1", "private"),
        ("100.64.0.1", "shared address space (carrier-grade NAT)"),
        ("100.127.255.254", "shared address space (carrier-grade NAT)"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.1.2.3", "'this network' (0.0.0.0/8)"),
        ("192.0.2.10", "private"),  # documentation (TEST-NET-1)
        ("2001:db8::1", "private"),  # documentation
        ("255.255.255.255", "private"),  # broadcast
        # IPv4 carried in IPv6 forms ends up at the IPv4 address.
        ("::ffff:127.0.0.1", "loopback, in an IPv6 form"),
        ("::ffff:169.254.169.254", "link-local, in an IPv6 form"),
        ("::ffff:10.0.0.1", "private, in an IPv6 form"),
        ("::127.0.0.1", "loopback, in an IPv6 form"),  # IPv4-compatible
        ("64:ff9b::7f00:1", "loopback, in an IPv6 form"),  # NAT64
        ("2002:7f00:1::", "loopback, in an IPv6 form"),  # 6to4
        ("2002:a9fe:a9fe::1", "link-local, in an IPv6 form"),
    ],
)
def test_refused_addresses(address: str, reason: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "93.184.216.34",
        "100.63.255.255",  # just below 100.64/10
        "100.128.0.0",  # just above
        "172.15.255.255",
        "172.32.0.0",
        "2001:4860:4860::8888",
        "::ffff:8.8.8.8",
        "2002:808:808::1",
    ],
)
def test_public_addresses_pass(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),  # one decimal number
        ("0x7f.1", "127.0.0.1"),  # hex, then the rest in one part
        ("0x7F000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),  # octal
        ("0177.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),  # trailing dot
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("[::1]", "::1"),
        ("[fe80::1%25eth0]", "fe80::1"),
        ("3232235777", "192.168.1.1"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
    ],
)
def test_literal_host_forms(host: str, address: str) -> None:
    assert literal_address(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize(
    "host",
    ["api.mailgun.net", "example.com", "1e100.net", "0x7g.1", "256.1.1.1.1", "1.2.3.256", ""],
)
def test_names_are_not_literals(host: str) -> None:
    assert literal_address(host) is None


@pytest.mark.parametrize(
    ("host", "refused"),
    [
        ("2130706433", True),
        ("0x7f.1", True),
        ("[::ffff:127.0.0.1]", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("api.localhost", True),
        ("169.254.169.254", True),
        ("93.184.216.34", False),
        ("api.mailgun.net", False),  # a name: checked on what it resolves to
    ],
)
def test_host_refusal(host: str, refused: bool) -> None:
    assert (host_refusal(host) is not None) is refused


def test_origins_compare_spellings_equal() -> None:
    assert origin_of("HTTP://Example.COM/path") == "http://example.com:80"
    assert origin_of("https://api.mailgun.net") == "https://api.mailgun.net:443"
    assert origin_of("http://0x7f.1:8025/x") == origin_of("http://127.0.0.1:8025")
    assert origin_of("http://[::1]:8025") == "http://[::1]:8025"
    assert parse_origins(" http://127.0.0.1:8025/ , api.example.com,, ") == {
        "http://127.0.0.1:8025",
        "https://api.example.com:443",
    }
    with pytest.raises(ValueError, match="base URL"):
        parse_origins("http://")


def test_policy_trusts_only_what_it_names_and_opens_private_on_request() -> None:
    strict = OutboundPolicy(trusted=parse_origins("http://127.0.0.1:8025"))
    assert strict.trusts("http://127.0.0.1:8025/v3")
    assert not strict.trusts("http://127.0.0.1:8026")
    assert not strict.trusts("https://127.0.0.1:8025")
    assert strict.refuses_address(ipaddress.ip_address("127.0.0.1")) == "loopback"
    assert strict.refuses_host("0x7f.1") == "127.0.0.1 is loopback"
    open_ = OutboundPolicy(allow_private=True)
    assert open_.refuses_address(ipaddress.ip_address("127.0.0.1")) is None
    assert open_.refuses_host("localhost") is None


def test_excerpt_is_short_plain_text() -> None:
    page = (
        "<!DOCTYPE html><html><head><title>t</title><style>body{color:red}</style>"
        "<script>alert(1)</script></head><body><h1>Internal&nbsp;admin</h1>"
        "<p>token=&lt;b&gt;abc&lt;/b&gt;</p>\x00\x1b[31m\u202e<!-- hidden -->"
        + "x" * 5000
        + "</body></html>"
    )
    excerpt = answer_excerpt(page)
    assert len(excerpt) <= EXCERPT_CHARS
    assert excerpt.endswith("…")
    assert "<" not in excerpt and ">" not in excerpt
    assert "alert" not in excerpt and "color:red" not in excerpt and "hidden" not in excerpt
    assert not any(ord(c) < 32 or c == "\u202e" for c in excerpt)
    assert excerpt.startswith("t Internal")
    assert answer_excerpt(b"\xff plain") == "\ufffd plain"
    assert answer_excerpt(None) == ""
    # Mailgun-style ids in angle brackets are text, not markup.
    assert answer_excerpt('{"id":"<2026.1@mg.example.com>"}') == '{"id":"<2026.1@mg.example.com>"}'
