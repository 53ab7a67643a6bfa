"""The outbound network policy in aiohttp: connectors that refuse what the policy refuses.

Every HTTP client of a process that calls a target which came through the API builds its
connector here: the Mailgun client (one session per host and proxy), the status-webhook
notifier, and through the Mailgun client the doctor and ``connect``. Two checks, so that DNS
rebinding cannot get around the one made when a target was created:

* a resolver (:class:`PolicyResolver`) that drops refused addresses from each lookup and
  fails when none is left, so a name that resolved to a public address yesterday and
  resolves to 127.0.0.1 now is refused when the connection is made;
* a socket factory that checks the address actually connected to, which also covers
  literal IP hosts (aiohttp does not ask a resolver for those).

With a proxy the connection goes to the proxy, so it is the proxy's address that is checked
here; the target behind it was checked when it was created (:meth:`Outbound.check_target`).
When ``TIDINGS_DNS_SERVER`` is set, names are resolved by that server (dnspython), for the
checks and the connections alike.

It lives under ``providers/`` because providers may import only ``domain`` and their own
package; the notifier and the doctor import it from here. The classification itself is pure
and lives in :mod:`tidings.domain.network`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import dns.asyncresolver
import dns.exception
import dns.resolver
from aiohttp.abc import AbstractResolver, ResolveResult

from tidings.domain.errors import ValidationError
from tidings.domain.network import IPAddress, OutboundPolicy, literal_address

__all__ = [
    "CREATION_LOOKUP_TIMEOUT_S",
    "DnsResolver",
    "Outbound",
    "PolicyResolver",
    "TargetRefused",
    "parse_dns_server",
    "refusal_in",
]

CREATION_LOOKUP_TIMEOUT_S = 3.0
_FIX = (
    "targets given through the API may not reach loopback, link-local or private "
    "addresses; an operator can allow it with TIDINGS_ALLOW_PRIVATE_NETWORKS=true, or trust "
    "a provider's base URL with TIDINGS_PROVIDER_HOSTS"
)


class TargetRefused(OSError):
    """A connection the outbound network policy does not allow (raised where aiohttp expects
    an ``OSError`` from resolving or connecting, so it surfaces as a connection error)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.strerror = message  # what aiohttp's connection errors show in their text


def refusal_in(error: BaseException | None) -> TargetRefused | None:
    """The policy refusal behind an aiohttp error, if that is what it was."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, TargetRefused):
            return error
        seen.add(id(error))
        nested = getattr(error, "os_error", None)
        error = (
            nested if isinstance(nested, BaseException) else error.__cause__ or error.__context__
        )
    return None


def parse_dns_server(value: str) -> tuple[str, int]:
    """``"127.0.0.1:5353"`` → ``("127.0.0.1", 5353)``; ``"[::1]:53"``, ``"::1"`` and
    ``"10.0.0.2"`` (port 53) work too."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":")
        return host, int(port) if port else 53
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host, int(port)
    return value, 53


class DnsResolver(AbstractResolver):
    """Names resolved by one DNS server (``TIDINGS_DNS_SERVER``) instead of the system's."""

    def __init__(self, server: str, *, timeout: float = 3.0) -> None:
        host, port = parse_dns_server(server)
        self._resolver = dns.asyncresolver.Resolver(configure=False)
        self._resolver.nameservers = [host]
        self._resolver.port = port
        self._resolver.timeout = timeout
        self._resolver.lifetime = timeout

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        name = host.rstrip(".").lower()
        if name == "localhost" or name.endswith(".localhost"):
            return [_result(host, "127.0.0.1", port, socket.AF_INET)]
        wanted = [
            (kind, fam)
            for kind, fam in (("A", socket.AF_INET), ("AAAA", socket.AF_INET6))
            if family in (socket.AF_UNSPEC, fam)
        ]
        results: list[ResolveResult] = []
        last: Exception | None = None
        for kind, fam in wanted:
            try:
                answer = await self._resolver.resolve(name, kind, search=False)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer) as exc:
                last = exc
                continue
            except dns.exception.DNSException as exc:
                raise OSError(f"DNS lookup of {host} failed: {exc}") from exc
            results.extend(_result(host, rdata.to_text(), port, fam) for rdata in answer)
        if not results:
            raise OSError(f"{host} has no address in DNS ({last or 'no answer'})")
        return results

    async def close(self) -> None:
        return None


def _result(hostname: str, address: str, port: int, family: int) -> ResolveResult:
    return {
        "hostname": hostname,
        "host": address,
        "port": port,
        "family": family,
        "proto": 0,
        "flags": socket.AI_NUMERICHOST,
    }


class PolicyResolver(AbstractResolver):
    """Resolves with ``inner`` and keeps only the addresses the policy allows."""

    def __init__(self, policy: OutboundPolicy, inner: AbstractResolver) -> None:
        self._policy = policy
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        early = self._policy.refuses_host(host)
        if early:
            raise TargetRefused(f"refused by the outbound network policy: {early}")
        results = await self._inner.resolve(host, port, family)
        kept: list[ResolveResult] = []
        refused: list[str] = []
        for result in results:
            reason = self._policy.refuses_address(ipaddress.ip_address(result["host"]))
            if reason:
                refused.append(f"{result['host']} ({reason})")
            else:
                kept.append(result)
        if not kept:
            raise TargetRefused(
                f"refused by the outbound network policy: {host} resolves to {', '.join(refused)}"
            )
        return kept

    async def close(self) -> None:
        await self._inner.close()


def _guarded_socket(policy: OutboundPolicy) -> Callable[[Any], socket.socket]:
    """A socket factory that refuses to connect to an address the policy refuses."""

    def factory(addr_info: Any) -> socket.socket:
        family, type_, proto, _, address = addr_info
        reason = policy.refuses_address(ipaddress.ip_address(address[0]))
        if reason:
            raise TargetRefused(f"refused by the outbound network policy: {address[0]} is {reason}")
        return socket.socket(family=family, type=type_, proto=proto)

    return factory


class Outbound:
    """One process's outbound policy and name resolution, for every HTTP client it builds."""

    def __init__(self, policy: OutboundPolicy, dns_server: str | None = None) -> None:
        self.policy = policy
        self.dns_server = dns_server

    def _plain_resolver(self) -> AbstractResolver:
        if self.dns_server:
            return DnsResolver(self.dns_server)
        return aiohttp.ThreadedResolver()

    def connector(self, *, first_hop: str | None, **kwargs: Any) -> aiohttp.TCPConnector:
        """A connector for calls whose first connection goes to ``first_hop`` (the target,
        or its proxy), guarded unless that is trusted; ``None``: always guarded (the
        notifier's session, shared by every endpoint)."""
        trusted = first_hop is not None and self.policy.trusts(first_hop)
        if trusted or self.policy.allow_private:
            return aiohttp.TCPConnector(resolver=self._plain_resolver(), **kwargs)
        return aiohttp.TCPConnector(
            resolver=PolicyResolver(self.policy, self._plain_resolver()),
            socket_factory=_guarded_socket(self.policy),
            **kwargs,
        )

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """Every address ``host`` resolves to now (no policy applied)."""
        literal = literal_address(host)
        if literal is not None:
            return [literal]
        resolver = self._plain_resolver()
        try:
            results = await resolver.resolve(host, port, socket.AF_UNSPEC)
        finally:
            await resolver.close()
        return [ipaddress.ip_address(result["host"]) for result in results]

    async def refusal(self, url: str, *, trust: bool = True) -> str | None:
        """Why a call to ``url`` would be refused now, or ``None``. A name that does not
        resolve (yet) is not refused: the connection is checked again when it is made."""
        if (trust and self.policy.trusts(url)) or self.policy.allow_private:
            return None
        parts = urlsplit(url)
        host = parts.hostname or ""
        early = self.policy.refuses_host(host)
        if early:
            return early
        if literal_address(host) is not None:
            return None
        try:
            port = parts.port or 0
            async with asyncio.timeout(CREATION_LOOKUP_TIMEOUT_S):
                found = await self.addresses(host, port)
        except (OSError, TimeoutError, ValueError):
            return None
        for address in found:
            reason = self.policy.refuses_address(address)
            if reason:
                return f"{host} resolves to {address}, which is {reason}"
        return None

    async def check_target(self, url: str, path: str, *, trust: bool = True) -> None:
        """Raise a ValidationError naming ``path`` when ``url`` is a refused target
        (creation time: POST/PUT/PATCH /providers, /send overrides, status endpoints)."""
        reason = await self.refusal(url, trust=trust)
        if reason:
            parts = urlsplit(url)
            host = parts.hostname or ""
            shown = f"{parts.scheme}://" + (f"[{host}]" if ":" in host else host)
            with contextlib.suppress(ValueError):
                shown += f":{parts.port}" if parts.port else ""
            raise ValidationError(path, f"{shown} is refused: {reason}; {_FIX}")
