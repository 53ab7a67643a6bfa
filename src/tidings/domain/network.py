"""The outbound network policy, as pure functions: which addresses an API-given target may
reach, which origins the operator trusts, and how much of a target's answer may be shown.

Targets that arrive through the API (provider hosts, proxies, per-message overrides, status
webhook endpoints) must not reach loopback, link-local, private or otherwise non-public
addresses unless the operator allows private networks; origins the operator names
(``MAILGUN_HOST``, ``TIDINGS_PROVIDER_HOSTS``) are trusted as they are. The HTTP clients
enforce this on the resolved address at connect time (``tidings.providers.outbound``); this
module only classifies, with :mod:`ipaddress`, and never does I/O.
"""

from __future__ import annotations

import html
import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

__all__ = [
    "EXCERPT_CHARS",
    "IPAddress",
    "OutboundPolicy",
    "address_refusal",
    "answer_excerpt",
    "host_refusal",
    "literal_address",
    "origin_of",
    "parse_origins",
]

# Ranges ``ipaddress`` does not single out by a flag of their own, named for the refusal.
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known NAT64 prefix (RFC 6052)
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_DEFAULT_PORTS = {"http": 80, "https": 443, "socks4": 1080, "socks4a": 1080, "socks5": 1080}
_DEFAULT_PORTS["socks5h"] = 1080


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries and that a connection would end up at:
    IPv4-mapped (``::ffff:a.b.c.d``), IPv4-compatible (``::a.b.c.d``), NAT64, 6to4 and Teredo."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    packed = address.packed
    if packed[:12] == bytes(12) and int(address) > 1:
        return ipaddress.IPv4Address(packed[12:])
    if address in _NAT64 or address in _NAT64_LOCAL:
        return ipaddress.IPv4Address(packed[12:])
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def address_refusal(address: IPAddress) -> str | None:
    """Why an API-given target must not be connected to at ``address``, or ``None`` when the
    address is public. The reason is a few words a person understands ("loopback")."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            address = ipaddress.IPv6Address(address.compressed.split("%", 1)[0])
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = address_refusal(embedded)
            return f"{inner}, in an IPv6 form" if inner else None
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address):
        if address in _SHARED:
            return "shared address space (carrier-grade NAT)"
        if address in _THIS_NETWORK:
            return "'this network' (0.0.0.0/8)"
    if address.is_private or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local):
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "not a public address"
    return None


def _ipv4_part(text: str) -> int | None:
    """One part of a legacy IPv4 form: decimal, ``0x`` hexadecimal or ``0``-led octal."""
    if not text:
        return None
    try:
        if text[:2].lower() == "0x":
            return int(text[2:] or "0", 16)
        if len(text) > 1 and text[0] == "0":
            return int(text[1:], 8)
        return int(text, 10)
    except ValueError:
        return None


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1`` → 127.0.0.1, as ``inet_aton``
    (and so ``getaddrinfo``) reads them; anything else → ``None``."""
    parts = host.split(".")
    if parts and parts[-1] == "":
        parts = parts[:-1]  # a trailing dot
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_ipv4_part(part) for part in parts]
    if any(number is None for number in numbers):
        return None
    values = [n for n in numbers if n is not None]
    *head, last = values
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(values)):
        return None
    value = last
    for index, number in enumerate(head):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def literal_address(host: str) -> IPAddress | None:
    """The address a URL host names literally (``[::1]``, ``127.0.0.1``, ``0x7f.1``, with or
    without a trailing dot or IPv6 zone), or ``None`` when it is a name to resolve."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return None
    return _legacy_ipv4(host)


def host_refusal(host: str) -> str | None:
    """Why a URL host is refused without asking DNS: a literal non-public address, or a
    name that always means this machine (``localhost``, RFC 6761). ``None`` otherwise."""
    address = literal_address(host)
    if address is not None:
        reason = address_refusal(address)
        return f"{address} is {reason}" if reason else None
    name = host.strip().lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return f"{name} is loopback"
    return None


def origin_of(url: str) -> str:
    """``HTTP://Example.com:80/x`` → ``http://example.com:80``: scheme, host and port, the
    port written out, so that two spellings of one origin compare equal."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    address = literal_address(host) if host else None
    if address is not None:
        host = f"[{address}]" if address.version == 6 else str(address)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{scheme}://{host}:{port or _DEFAULT_PORTS.get(scheme, 0)}"


def parse_origins(text: str | None) -> frozenset[str]:
    """``"http://127.0.0.1:8025, https://mg-proxy.internal"`` → their origins; an entry
    without a scheme is taken as https (``api.example.com``)."""
    origins: set[str] = set()
    for raw in (text or "").split(","):
        entry = raw.strip()
        if not entry:
            continue
        if "://" not in entry:
            entry = f"https://{entry}"
        parts = urlsplit(entry)
        if not parts.scheme or not parts.hostname:
            raise ValueError(f"{raw.strip()!r} is not a base URL such as http://127.0.0.1:8025")
        origins.add(origin_of(entry))
    return frozenset(origins)


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """What this process may connect to. ``trusted`` origins (set by the operator) are used
    as they are; every other target must resolve to public addresses, unless
    ``allow_private`` (sandbox mode, or ``TIDINGS_ALLOW_PRIVATE_NETWORKS``)."""

    allow_private: bool = False
    trusted: frozenset[str] = field(default_factory=frozenset)

    def trusts(self, url: str) -> bool:
        return origin_of(url) in self.trusted

    def refuses_address(self, address: IPAddress) -> str | None:
        """Why ``address`` is refused for an untrusted target, or ``None``."""
        return None if self.allow_private else address_refusal(address)

    def refuses_host(self, host: str) -> str | None:
        """Why an untrusted target's host is refused before any lookup, or ``None``."""
        return None if self.allow_private else host_refusal(host)


# -- what a target answered, as it may be shown ------------------------------------------

EXCERPT_CHARS = 200
_BLOCKS = re.compile(r"<(script|style)\b[^>]*>.*?(</\1\s*>|$)", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<!--.*?(-->|$)|<![^>]*>|</?[a-zA-Z][a-zA-Z0-9:-]*(\s[^<>]*)?/?>", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_SPACE = re.compile(r"\s+")


def answer_excerpt(text: str | bytes | None, limit: int = EXCERPT_CHARS) -> str:
    """A target's answer body as it may be shown back (``lastError``, the doctor, attempt
    history for hosts that are not Mailgun's): HTML tags and control characters removed,
    white space collapsed, at most ``limit`` characters ("…" marks a cut). A body is never
    shown beyond this, so that a request to an internal service cannot read it out."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text[: limit * 20]  # the rest can never be shown: do not scan it
    # Twice: once for markup, once for markup that arrived entity-encoded (&lt;b&gt;).
    text = _TAGS.sub(" ", _BLOCKS.sub(" ", text))
    text = _TAGS.sub(" ", _BLOCKS.sub(" ", html.unescape(text)))
    text = _SPACE.sub(" ", _CONTROL.sub(" ", text)).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text
