"""The sending domain's DNS, as receiving servers see it: MX, SPF and DKIM (dnspython).

Why each matters for mail sent through Mailgun:

* **MX** — many receiving servers refuse mail whose sender domain cannot receive a reply:
  ``550 sender domain has no MX record``. The classic failure of a new sending domain.
* **SPF** — a TXT ``v=spf1 … include:mailgun.org …`` lets Mailgun's servers send for the
  domain; without it mail fails SPF and goes to spam or is refused. Two SPF records are as bad
  as none (an SPF ``permerror``).
* **DKIM** — Mailgun signs with a key published as TXT at ``{selector}._domainkey.{domain}``.
  Mailgun's domain API lists the selector and key it expects (``sending_dns_records``); when
  it does not, the usual selectors are tried.

The resolver's nameserver is configurable (``TIDINGS_DNS_SERVER``, ``host[:port]``) so that
tests, and hosts behind split-horizon DNS, can ask a specific server.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.resolver

from tidings.providers.mailgun.doctor.checks import Check
from tidings.providers.outbound import parse_dns_server

__all__ = [
    "COMMON_DKIM_SELECTORS",
    "DnsAnswer",
    "ExpectedRecords",
    "dkim_check",
    "dns_checks",
    "make_resolver",
    "mx_check",
    "parse_dns_server",
    "spf_check",
]

COMMON_DKIM_SELECTORS = ("mx", "smtp", "k1", "pic")
DEFAULT_SPF = "v=spf1 include:mailgun.org ~all"
_PROPAGATION = "DNS changes can take up to about 2 hours to propagate"
_DKIM_KEY = re.compile(r"(?:^|;)\s*p=([^;]*)", re.IGNORECASE)


def make_resolver(server: str | None, *, timeout: float = 3.0) -> dns.asyncresolver.Resolver:
    """A resolver asking ``server`` (``host[:port]``), else the system's resolvers.

    Raises ``dns.resolver.NoResolverConfiguration`` when there is no server and the system
    has none configured."""
    if server:
        host, port = parse_dns_server(server)
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = port
    else:
        resolver = dns.asyncresolver.Resolver()
    resolver.timeout = timeout
    resolver.lifetime = timeout
    return resolver


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    """The records found, or why there are none: ``missing`` (the name or the type does not
    exist: a fact) versus ``error`` (the question could not be answered: unknown)."""

    records: tuple[str, ...] = ()
    missing: str | None = None
    error: str | None = None


async def _lookup(resolver: dns.asyncresolver.Resolver, name: str, rdtype: str) -> DnsAnswer:
    try:
        answer = await resolver.resolve(name, rdtype, search=False)
    except dns.resolver.NXDOMAIN:
        return DnsAnswer(missing=f"{name} does not exist in DNS (NXDOMAIN)")
    except dns.resolver.NoAnswer:
        return DnsAnswer(missing=f"{name} has no {rdtype} record")
    except dns.exception.Timeout:
        return DnsAnswer(error=f"DNS query for {name} {rdtype} timed out")
    except dns.exception.DNSException as exc:
        return DnsAnswer(error=f"DNS query for {name} {rdtype} failed: {exc}")
    records: list[str] = []
    for rdata in answer:
        if rdtype == "TXT":
            records.append(b"".join(rdata.strings).decode("utf-8", "replace"))
        elif rdtype == "MX":
            records.append(f"{rdata.preference} {rdata.exchange.to_text(omit_final_dot=True)}")
        else:
            records.append(rdata.to_text())
    return DnsAnswer(records=tuple(records))


@dataclass(frozen=True, slots=True)
class ExpectedRecords:
    """What Mailgun's domain API says the DNS should hold (empty when it did not say)."""

    mx: tuple[str, ...] = ()
    spf: str | None = None
    dkim: tuple[tuple[str, str], ...] = ()  # (full record name, TXT value)

    @classmethod
    def from_domain_answer(cls, raw: dict[str, Any]) -> ExpectedRecords:
        mx: list[str] = []
        spf: str | None = None
        dkim: list[tuple[str, str]] = []
        for record in _records(raw.get("receiving_dns_records")):
            if record["type"] == "MX":
                mx.append(record["value"])
        for record in _records(raw.get("sending_dns_records")):
            if record["type"] != "TXT":
                continue
            if record["value"].lower().startswith("v=spf1"):
                spf = record["value"]
            elif "._domainkey." in record["name"].lower():
                dkim.append((record["name"].rstrip("."), record["value"]))
        return cls(mx=tuple(mx), spf=spf, dkim=tuple(dkim))


def _records(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        return []
    return [
        {
            "type": str(item.get("record_type", "")).upper(),
            "name": str(item.get("name", "")),
            "value": str(item.get("value", "")),
        }
        for item in value
        if isinstance(item, dict)
    ]


def _unknown(name: str, answer: DnsAnswer, server: str) -> Check:
    return Check(
        name,
        "warn",
        f"could not check: {answer.error} (asked {server})",
        "Make sure this host can reach a DNS server, or set TIDINGS_DNS_SERVER to one "
        "(host[:port]).",
    )


async def mx_check(
    resolver: dns.asyncresolver.Resolver, domain: str, expected: ExpectedRecords, server: str
) -> Check:
    answer = await _lookup(resolver, domain, "MX")
    if answer.error:
        return _unknown("dns_mx", answer, server)
    if answer.records:
        return Check("dns_mx", "ok", f"MX for {domain}: {', '.join(sorted(answer.records))}")
    wanted = ", ".join(expected.mx) if expected.mx else "mxa.mailgun.org and mxb.mailgun.org"
    return Check(
        "dns_mx",
        "fail",
        f"{domain} has no MX record ({answer.missing}). Receiving servers reject mail from a "
        "sending domain without one: '550 sender domain has no MX record'",
        f"Add an MX record for {domain} at your DNS provider (Mailgun's: {wanted}, priority "
        f"10), then allow about 2 hours for it to propagate before sending again.",
    )


async def spf_check(
    resolver: dns.asyncresolver.Resolver, domain: str, expected: ExpectedRecords, server: str
) -> Check:
    answer = await _lookup(resolver, domain, "TXT")
    if answer.error:
        return _unknown("dns_spf", answer, server)
    wanted = expected.spf or DEFAULT_SPF
    spf = [txt for txt in answer.records if txt.lower().startswith("v=spf1")]
    if not spf:
        return Check(
            "dns_spf",
            "fail",
            f"{domain} has no SPF record (no TXT starting with v=spf1): receivers cannot "
            "tell that Mailgun may send for it, so mail goes to spam or is refused",
            f'Add a TXT record for {domain}: "{wanted}". {_PROPAGATION}.',
        )
    if len(spf) > 1:
        return Check(
            "dns_spf",
            "fail",
            f"{domain} has {len(spf)} SPF records; SPF then fails for every message "
            f"(permerror): {' | '.join(spf)}",
            f'Merge them into one TXT record that includes mailgun.org, e.g. "{wanted}".',
        )
    if "include:mailgun.org" not in spf[0].lower():
        return Check(
            "dns_spf",
            "warn",
            f"the SPF record of {domain} does not include mailgun.org directly: {spf[0]}",
            "Add include:mailgun.org to it (unless an include you use already includes "
            f'Mailgun\'s), e.g. "{wanted}". {_PROPAGATION}.',
        )
    return Check("dns_spf", "ok", f"SPF for {domain}: {spf[0]}")


def _dkim_key(value: str) -> str | None:
    match = _DKIM_KEY.search(value)
    return re.sub(r"\s+", "", match.group(1)) if match else None


async def dkim_check(
    resolver: dns.asyncresolver.Resolver, domain: str, expected: ExpectedRecords, server: str
) -> Check:
    if expected.dkim:
        # Mailgun said which selector it signs with: that record, and no other, must exist.
        name, value = expected.dkim[0]
        answer = await _lookup(resolver, name, "TXT")
        if answer.error:
            return _unknown("dns_dkim", answer, server)
        keys = [key for key in (_dkim_key(txt) for txt in answer.records) if key]
        if not keys:
            return Check(
                "dns_dkim",
                "fail",
                f"no DKIM key at {name}, where Mailgun signs {domain}'s mail "
                f"({answer.missing or 'no TXT with p='})",
                f"Add the TXT record {name} with the value Mailgun shows under Domain "
                f"settings → DNS records. {_PROPAGATION}.",
            )
        wanted = _dkim_key(value)
        if wanted and wanted not in keys:
            return Check(
                "dns_dkim",
                "fail",
                f"the DKIM key at {name} is not the one Mailgun signs with",
                f"Replace the TXT record {name} with the value Mailgun shows under Domain "
                f"settings → DNS records. {_PROPAGATION}.",
            )
        return Check("dns_dkim", "ok", f"DKIM key published at {name}")
    names = [f"{selector}._domainkey.{domain}" for selector in COMMON_DKIM_SELECTORS]
    answers = await asyncio.gather(*(_lookup(resolver, name, "TXT") for name in names))
    found = [
        name
        for name, answer in zip(names, answers, strict=True)
        if any(_dkim_key(txt) for txt in answer.records)
    ]
    if found:
        return Check("dns_dkim", "ok", f"DKIM key published at {', '.join(found)}")
    errors = [answer for answer in answers if answer.error]
    if errors:
        return _unknown("dns_dkim", errors[0], server)
    return Check(
        "dns_dkim",
        "warn",
        f"no DKIM key found for {domain} at the usual selectors "
        f"({', '.join(COMMON_DKIM_SELECTORS)}); Mailgun did not say which selector it uses",
        "Add the DKIM TXT record Mailgun shows under Domain settings → DNS records (a name "
        f"like pic._domainkey.{domain}); unsigned mail is often filtered as spam.",
    )


async def dns_checks(
    domain: str,
    expected: ExpectedRecords,
    *,
    server: str | None,
    query_timeout_s: float = 3.0,
) -> list[Check]:
    """MX, SPF and DKIM for ``domain``, asked concurrently."""
    where = server or "the system's resolvers"
    try:
        resolver = make_resolver(server, timeout=query_timeout_s)
    except (dns.exception.DNSException, ValueError, OSError) as exc:
        reason = f"no DNS resolver available ({exc})"
        fix = "Set TIDINGS_DNS_SERVER to a DNS server this host can reach (host[:port])."
        return [Check(name, "warn", reason, fix) for name in ("dns_mx", "dns_spf", "dns_dkim")]
    checks: Sequence[Check] = await asyncio.gather(
        mx_check(resolver, domain, expected, where),
        spf_check(resolver, domain, expected, where),
        dkim_check(resolver, domain, expected, where),
    )
    return list(checks)
