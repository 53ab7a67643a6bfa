"""The sandbox's sending domains as Mailgun's domains API shows them: state, settings, DNS
records, tracking settings and sending queues, plus what tracking means for one send.

Pure data and functions (no HTTP): ``domains_api`` translates requests into these, ``core``
asks :func:`send_tracking` which events a send may produce, and :func:`with_unsubscribe`
adds the unsubscribe footer as Mailgun does when unsubscribe tracking is on.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

# Mailgun's default unsubscribe footers (as its domain tracking answer shows them).
DEFAULT_HTML_FOOTER = '\n<br>\n<p><a href="%unsubscribe_url%">unsubscribe</a></p>\n'
DEFAULT_TEXT_FOOTER = "\n\nTo unsubscribe click: <%unsubscribe_url%>\n\n"
DEFAULT_DKIM_SELECTOR = "k1"
SPAM_ACTIONS = ("disabled", "block", "tag")
WEB_SCHEMES = ("http", "https")
CLICK_MODES = ("true", "false", "htmlonly")
UNVERIFIED_REASON = (
    "The domain is unverified and requires DNS configuration. Log in to your control panel "
    "to view required DNS records."
)
_OFF = ("no", "false", "0")
_ON = ("yes", "true", "1")


def http_date(epoch: float) -> str:
    """RFC 2822 in GMT, as Mailgun writes ``created_at``."""
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(epoch))


@dataclass
class Tracking:
    """A domain's open, click and unsubscribe tracking settings."""

    open: bool = True
    open_at_top: bool = False
    click: str = "true"  # one of CLICK_MODES
    unsubscribe: bool = False
    html_footer: str = DEFAULT_HTML_FOOTER
    text_footer: str = DEFAULT_TEXT_FOOTER

    def open_json(self) -> JSON:
        return {"active": self.open, "place_at_the_top": self.open_at_top}

    def click_json(self) -> JSON:
        # A boolean, as documented: "htmlonly" counts as active ("Click tracking is
        # considered active if it's in the 'htmlonly' or 'true' state").
        return {"active": self.click != "false"}

    def unsubscribe_json(self) -> JSON:
        return {
            "active": self.unsubscribe,
            "html_footer": self.html_footer,
            "text_footer": self.text_footer,
        }


@dataclass
class DomainRecord:
    """One sending domain of the account."""

    name: str
    created_at: float
    state: str = "active"  # "active", "unverified", "disabled"
    spam_action: str = "disabled"
    wildcard: bool = False
    web_scheme: str = "http"
    web_prefix: str = "email"
    require_tls: bool = False
    skip_verification: bool = False
    force_dkim_authority: bool = False
    dkim_selector: str = DEFAULT_DKIM_SELECTOR
    dkim_key_size: int = 1024
    # The public key of the DKIM record the domain answer lists; None lists no DKIM record
    # (the doctor then tries the usual selectors). See docs/sandbox.md.
    dkim_public_key: str | None = None
    smtp_password: str = field(default="", repr=False)  # kept, never answered
    tracking: Tracking = field(default_factory=Tracking)

    @property
    def verified(self) -> bool:
        return self.state == "active"

    def describe(self) -> JSON:
        """The ``domain`` object of the domains API (never the SMTP password)."""
        return {
            "created_at": http_date(self.created_at),
            "id": hashlib.sha256(self.name.encode()).hexdigest()[:24],
            "is_disabled": self.state == "disabled",
            "name": self.name,
            "require_tls": self.require_tls,
            "skip_verification": self.skip_verification,
            "smtp_login": f"postmaster@{self.name}",
            "spam_action": self.spam_action,
            "state": self.state,
            "type": "custom",
            "use_automatic_sender_security": False,
            "web_prefix": self.web_prefix,
            "web_scheme": self.web_scheme,
            "wildcard": self.wildcard,
        }

    def answer(self, message: str | None = None) -> JSON:
        """``GET /v3|v4/domains/{name}``: the domain and its DNS records."""
        valid = "valid" if self.verified else "unknown"
        body: JSON = {
            "domain": self.describe(),
            "receiving_dns_records": [
                _record("MX", "", "mxa.mailgun.org", valid, priority="10"),
                _record("MX", "", "mxb.mailgun.org", valid, priority="10"),
            ],
            "sending_dns_records": self.sending_records(valid),
        }
        if message is not None:
            body["message"] = message
        return body

    def sending_records(self, valid: str) -> list[JSON]:
        records = [_record("TXT", self.name, "v=spf1 include:mailgun.org ~all", valid)]
        if self.dkim_public_key is not None:
            records.append(
                _record(
                    "TXT",
                    f"{self.dkim_selector}._domainkey.{self.name}",
                    f"k=rsa; p={self.dkim_public_key}",
                    valid,
                )
            )
        records.append(_record("CNAME", f"{self.web_prefix}.{self.name}", "mailgun.org", valid))
        return records

    def tracking_answer(self) -> JSON:
        return {
            "tracking": {
                "open": self.tracking.open_json(),
                "click": self.tracking.click_json(),
                "unsubscribe": self.tracking.unsubscribe_json(),
                "web_scheme": self.web_scheme,
            }
        }

    def tracking_host(self) -> str:
        return f"{self.web_scheme}://{self.web_prefix}.{self.name}"


def _record(kind: str, name: str, value: str, valid: str, **extra: str) -> JSON:
    record: JSON = {"record_type": kind, "valid": valid, "value": value, "cached": []}
    if name:
        record["name"] = name
    if kind != "MX":
        record["is_active"] = True
    record.update(extra)
    return record


def generated_dkim_key(domain: str, bits: int) -> str:
    """A stand-in DKIM public key, stable per domain: the DER prefix of an RSA key of that
    size followed by hash bytes. Not a usable key (the sandbox signs nothing)."""
    prefix = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQ" if bits == 1024 else "MIIBIjANBgkqhkiG9w0BAQ"
    length = 216 if bits == 1024 else 392
    material = b""
    counter = 0
    while len(base64.b64encode(material)) < length:
        material += hashlib.sha256(f"{domain}:{bits}:{counter}".encode()).digest()
        counter += 1
    return (prefix + base64.b64encode(material).decode())[:length]


def sending_queues(record: DomainRecord, account_disabled: bool) -> JSON:
    """``GET /v3/domains/{name}/sending_queues``: both queues, disabled when sending is."""
    if account_disabled or not record.verified:
        reason = "account disabled" if account_disabled else UNVERIFIED_REASON
        disabled: JSON = {"until": "", "reason": reason}
        queue: JSON = {"is_disabled": True, "disabled": disabled}
    else:
        queue = {"is_disabled": False, "disabled": {"until": "", "reason": ""}}
    return {"regular": queue, "scheduled": dict(queue)}


@dataclass(frozen=True, slots=True)
class SendTracking:
    """What tracking applies to one accepted message."""

    opens: bool
    clicks: bool
    unsubscribe: bool


def _switch(raw: str | None) -> bool | None:
    if raw is None:
        return None
    lowered = raw.strip().lower()
    if lowered in _OFF:
        return False
    if lowered in _ON or lowered == "htmlonly":
        return True
    return None


def send_tracking(tracking: Tracking, options: dict[str, str], has_html: bool) -> SendTracking:
    """Per-message ``o:tracking-opens`` / ``o:tracking-clicks`` override ``o:tracking``,
    which overrides the domain's settings (Mailgun: "this will override the domain
    setting"). Click tracking ``htmlonly`` tracks only links of the HTML part."""
    general = _switch(options.get("tracking"))
    opens = _switch(options.get("tracking-opens"))
    clicks_raw = options.get("tracking-clicks")
    clicks = _switch(clicks_raw)
    if opens is None:
        opens = general if general is not None else tracking.open
    if clicks is None:
        clicks = general if general is not None else tracking.click != "false"
        html_only = general is None and tracking.click == "htmlonly"
    else:
        html_only = (clicks_raw or "").strip().lower() == "htmlonly"
    if html_only and not has_html:
        clicks = False
    return SendTracking(opens=opens, clicks=clicks, unsubscribe=tracking.unsubscribe)


def with_unsubscribe(
    text: str | None, html: str | None, tracking: Tracking, url: str, tag_url: str
) -> tuple[str | None, str | None]:
    """Append the unsubscribe footers (an empty footer is not appended, as Mailgun says:
    "remove text in the HTML and text footer so they won't be appended") and replace
    ``%unsubscribe_url%`` / ``%tag_unsubscribe_url%`` with the recipient's links."""

    def fill(body: str | None, footer: str) -> str | None:
        if body is None:
            return None
        body = body + footer
        return body.replace("%tag_unsubscribe_url%", tag_url).replace("%unsubscribe_url%", url)

    return fill(text, tracking.text_footer), fill(html, tracking.html_footer)
