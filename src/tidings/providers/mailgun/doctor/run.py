"""``run_doctor``: every check for one Mailgun configuration, each with its fix.

The doctor reads; it changes nothing (``connect`` is the command that registers webhooks).
It calls Mailgun through the same client, and so the same route (direct or ``proxy_url``), as
sending does, so "the key works" means "the key works from here, the way Tidings calls".
"""

from __future__ import annotations

import importlib.util
import ipaddress
from datetime import UTC, datetime

from yarl import URL

from tidings.providers.base import DoctorOptions, WebhookActivity
from tidings.providers.mailgun.client import DomainInfo, MailgunClient
from tidings.providers.mailgun.connect import WEBHOOK_KINDS, check_domain
from tidings.providers.mailgun.doctor.checks import Check, DoctorReport, Status
from tidings.providers.mailgun.doctor.dns_checks import ExpectedRecords, dns_checks
from tidings.providers.mailgun.errors import MailgunError
from tidings.providers.mailgun.settings import MailgunConfig
from tidings.providers.settings import mask

__all__ = ["DoctorOptions", "WebhookActivity", "describe_route", "run_doctor"]

# Without these two, Tidings never learns by webhook that a message arrived or bounced.
REQUIRED_KINDS = ("delivered", "permanent_fail")
_SOCKS = ("socks4", "socks4a", "socks5", "socks5h")


def describe_route(config: MailgunConfig) -> str:
    """How calls reach Mailgun, safe to show: the proxy without its user or password."""
    origin = URL(config.base_url).origin()
    if not config.proxy_url:
        return f"direct to {origin}"
    proxy = URL(config.proxy_url)
    shown = proxy.with_user(None).with_path("").with_query(None)
    hidden = " (credentials hidden)" if proxy.user or proxy.password else ""
    return f"via proxy {shown}{hidden} to {origin}"


def _route_check(config: MailgunConfig, refused: str | None = None) -> Check:
    route = describe_route(config)
    if refused:
        return Check(
            "network_route",
            "fail",
            f"{route}: refused by the outbound network policy ({refused})",
            "Point the configuration at a public host (PATCH /providers/ID), or, if this "
            "target is yours, list it in TIDINGS_PROVIDER_HOSTS (or set "
            "TIDINGS_ALLOW_PRIVATE_NETWORKS=true).",
        )
    if not config.proxy_url:
        return Check(
            "network_route",
            "ok",
            f"{route}, from this host's own address",
            None,
        )
    scheme = URL(config.proxy_url).scheme
    if scheme in _SOCKS and importlib.util.find_spec("aiohttp_socks") is None:
        return Check(
            "network_route",
            "fail",
            f"{route}: a SOCKS proxy, but the aiohttp-socks package is not installed",
            "pip install aiohttp-socks (or use an http:// proxy).",
        )
    return Check(
        "network_route",
        "ok",
        f"{route}; if Mailgun restricts the key to allowlisted IPs, allowlist the proxy's "
        "egress address",
    )


def _api_check(config: MailgunConfig, info: DomainInfo | None, error: str | None) -> Check:
    host = URL(config.base_url).origin()
    if error is not None:
        return Check(
            "mailgun_api",
            "fail",
            error,
            "Fix the API key, host (region) or domain of this configuration: "
            "PATCH /providers/ID or `tidings providers add` again.",
        )
    assert info is not None
    state = info.state or "unknown"
    detail = f"the API key works at {host} and domain {config.domain} exists (state: {state})"
    if state in ("disabled", "suspended") or info.raw.get("domain", {}).get("is_disabled"):
        return Check(
            "mailgun_api",
            "fail",
            detail,
            "The domain is disabled at Mailgun: see Mailgun → Sending → Domains, or contact "
            "Mailgun support.",
        )
    if state == "unverified":
        return Check(
            "mailgun_api",
            "warn",
            detail,
            "Mailgun has not verified the domain's DNS yet: add the records it shows under "
            "Domain settings → DNS records, then press Verify (allow about 2 hours).",
        )
    return Check("mailgun_api", "ok", detail)


def _is_local(url: str) -> bool:
    host = URL(url).host or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


def _public_url_check(config: MailgunConfig, webhook_url: str) -> Check:
    base = str(URL(webhook_url).origin())
    if _is_local(webhook_url) and not _is_local(config.base_url):
        return Check(
            "public_url",
            "warn",
            f"webhook URLs are built from {base}, which Mailgun cannot reach from the internet",
            "Set TIDINGS_PUBLIC_URL to an https:// address that reaches this server (a "
            "reverse proxy or tunnel), then run `tidings providers connect ID` again.",
        )
    return Check("public_url", "ok", f"webhook URLs are built from {base}")


def _webhooks_check(
    options: DoctorOptions, hooks: dict[str, tuple[str, ...]] | None, error: str | None
) -> Check:
    fix = (
        f"Run `tidings providers connect {options.provider_id}` (or POST "
        f"/providers/{options.provider_id}/connect) to register {options.webhook_url}."
    )
    if hooks is None:
        return Check("webhooks_registered", "warn", f"not checked: {error}", None)
    url = options.webhook_url
    missing = [kind for kind in WEBHOOK_KINDS if url not in hooks.get(kind, ())]
    # URLs of this very server under another token: left by a deleted or re-created config.
    prefix = url.rsplit("/", 1)[0] + "/"
    stale = sorted(
        {u for urls in hooks.values() for u in urls if u.startswith(prefix) and u != url}
    )
    note = (
        f"; {len(stale)} other URL(s) of this server with an unknown token are registered "
        "too (remove them in Mailgun → Sending → Webhooks)"
        if stale
        else ""
    )
    if not missing:
        return Check(
            "webhooks_registered",
            "warn" if stale else "ok",
            f"Mailgun posts all {len(WEBHOOK_KINDS)} event kinds for the domain to this "
            f"server's URL{note}",
            None,
        )
    required = [kind for kind in missing if kind in REQUIRED_KINDS]
    if required:
        status: Status = "fail" if options.polling == "off" else "warn"
        consequence = (
            "with polling off, Tidings never learns that messages were delivered or bounced"
            if options.polling == "off"
            else "statuses arrive only by polling, minutes late"
        )
        return Check(
            "webhooks_registered",
            status,
            f"Mailgun does not post {', '.join(missing)} to this server's URL: {consequence}{note}",
            fix,
        )
    return Check(
        "webhooks_registered",
        "warn",
        f"Mailgun does not post {', '.join(missing)} to this server's URL: those events "
        f"arrive only by polling{note}",
        fix,
    )


def _signing_key_check(config: MailgunConfig, polling: str) -> Check:
    if config.webhook_signing_key:
        return Check(
            "signing_key",
            "ok",
            f"webhook signing key set ({mask(config.webhook_signing_key)}): webhooks are verified",
        )
    return Check(
        "signing_key",
        "fail" if polling == "off" else "warn",
        "no webhook signing key: every webhook is refused (Tidings never accepts an "
        "unverifiable one)",
        "Copy the HTTP webhook signing key from Mailgun → Sending → Webhooks and set it: "
        "PATCH /providers/ID with settings.webhook_signing_key.",
    )


def _ago(now: datetime, then: datetime) -> str:
    seconds = max(0.0, (now - then).total_seconds())
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _flowing(options: DoctorOptions, now: datetime) -> bool:
    last = options.activity.last_webhook_at
    return last is not None and (now - _aware(last)).total_seconds() <= options.quiet_s


def _polling_check(options: DoctorOptions, now: datetime) -> Check:
    mode = options.polling
    every = f"every {options.poll_interval_s:g} s"
    if mode == "on":
        return Check(
            "polling",
            "ok",
            f"polling on: Tidings reads the Events API {every}, so statuses arrive even "
            "without webhooks",
        )
    flowing = _flowing(options, now)
    if mode == "off":
        if flowing:
            return Check("polling", "ok", "polling off: statuses come from webhooks only")
        return Check(
            "polling",
            "warn",
            "polling off and no signed webhook arrived recently: if webhooks are not "
            "coming, messages stay SENT forever",
            "Set polling to on or auto (PATCH /providers/ID settings.polling), or fix the "
            "webhooks (see the checks above).",
        )
    since = options.activity.webhooks_since
    paused = (
        flowing
        and since is not None
        and (now - _aware(since)).total_seconds() >= options.auto_after_s
    )
    if paused:
        assert since is not None
        return Check(
            "polling",
            "ok",
            f"polling auto: paused, webhooks have flowed since {_aware(since):%Y-%m-%d %H:%M} "
            "UTC; it resumes by itself if they stop",
        )
    return Check(
        "polling",
        "ok",
        f"polling auto: active ({every}); it pauses once webhooks have flowed for "
        f"{options.auto_after_s / 60:g} min",
    )


def _arriving_check(options: DoctorOptions, now: datetime) -> Check:
    last = options.activity.last_webhook_at
    fix = (
        "Check the checks above (webhooks registered, public URL, signing key); Mailgun "
        "posts only when there are events, so send a message and look again."
    )
    if last is None:
        return Check(
            "webhooks_arriving",
            "fail" if options.polling == "off" else "warn",
            "no signed webhook from Mailgun has been accepted for this domain yet",
            fix,
        )
    when = f"{_aware(last):%Y-%m-%d %H:%M:%S} UTC ({_ago(now, _aware(last))})"
    if _flowing(options, now):
        return Check("webhooks_arriving", "ok", f"last signed webhook accepted {when}")
    return Check(
        "webhooks_arriving",
        "warn",
        f"last signed webhook accepted {when}; none since (fine if nothing was sent)",
        fix,
    )


async def run_doctor(
    client: MailgunClient, config: MailgunConfig, options: DoctorOptions
) -> DoctorReport:
    now = options.now or datetime.now(UTC)
    report = DoctorReport(
        provider_id=options.provider_id,
        domain=config.domain,
        host=str(URL(config.base_url).origin()),
    )
    route = _route_check(config, options.refused)
    report.checks.append(route)

    info: DomainInfo | None = None
    api_error: str | None = None
    if route.status == "fail":
        api_error = "Mailgun not called: the network route cannot work"
    else:
        try:
            info = await check_domain(client, config)
        except MailgunError as exc:  # ConnectError included: its sentence says what to fix
            api_error = str(exc)
    report.checks.append(_api_check(config, info, api_error))

    if options.sandbox:
        report.checks.append(
            Check("dns", "ok", f"{config.domain} is the built-in sandbox's: no DNS to check")
        )
    else:
        expected = ExpectedRecords.from_domain_answer(info.raw) if info else ExpectedRecords()
        report.checks.extend(
            await dns_checks(
                config.domain,
                expected,
                server=options.dns_server,
                query_timeout_s=options.dns_timeout_s,
            )
        )

    hooks: dict[str, tuple[str, ...]] | None = None
    hooks_error = api_error
    if info is not None:
        try:
            hooks = {hook.name: hook.urls for hook in await client.list_webhooks(config)}
        except MailgunError as exc:
            hooks_error = f"could not list webhooks: {exc}"
    report.checks.append(_webhooks_check(options, hooks, hooks_error))
    report.checks.append(_public_url_check(config, options.webhook_url))
    report.checks.append(_signing_key_check(config, options.polling))
    report.checks.append(_polling_check(options, now))
    report.checks.append(_arriving_check(options, now))
    return report
