"""Known Mailgun failures, each with a plain explanation and what to do about it.

A hint is looked up from whatever Tidings knows about a failure: the HTTP status of Mailgun's
answer, Mailgun's (or the receiving server's) message, and for delivery events the SMTP-ish
``delivery-status.code``. The table is ordered: the first matching rule wins, so specific
rules (a sandbox domain's recipients) come before general ones ("not allowed to send").
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tidings.providers.base import Hint

__all__ = ["HINTS", "Hint", "hint_for"]


_Predicate = Callable[[int | None, str, int | None], bool]


def _search(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


_THROTTLE = _search(r"limit exceeded|try again after|probation|too many requests|rate limit")
_SENDER_NO_MX = _search(
    r"(sender|sending|from)\b.{0,80}?(no mx|mx record|domain not found|does not resolve"
    r"|unresolvable|must resolve|not exist)"
    r"|(no mx|mx record).{0,80}?\b(sender|sending)"
    r"|\b5\.1\.8\b"
)
_RECIPIENT_NO_MX = _search(r"no mx for")
_NO_MAILBOX = _search(
    r"\b5\.1\.1\b|no such (user|mailbox)|user unknown|mailbox (unavailable|not found)"
    r"|recipient address rejected|does not exist"
)
_NOT_ALLOWED = _search(r"not allowed to send")
_SANDBOX_DOMAIN = _search(r"sandbox subdomains are for test purposes|authorized recipients")
_DOMAIN_NOT_FOUND = _search(r"domain not found")
_OPTIONS_TOO_BIG = _search(r"limited to 16 ?kb")
_TOO_OLD = _search(r"too old")


def _rule_sender_no_mx(status: int | None, message: str, code: int | None) -> bool:
    return (code is None or 500 <= code < 600) and bool(_SENDER_NO_MX.search(message))


def _rule_throttled(status: int | None, message: str, code: int | None) -> bool:
    return status in (420, 429) or (status is not None and bool(_THROTTLE.search(message)))


HINTS: tuple[tuple[Hint, _Predicate], ...] = (
    (
        Hint(
            key="sender-domain-no-mx",
            title="The receiving server rejected the sending domain (no MX record)",
            explanation=(
                "The recipient's mail server checks that the sender's domain can receive mail "
                "and refused the message (550) because the sending domain has no MX record."
            ),
            fix=(
                "Add an MX record to the sending domain's DNS (Mailgun's domain settings list "
                "the values) and allow about 2 hours for it to propagate, then resend."
            ),
        ),
        _rule_sender_no_mx,
    ),
    (
        Hint(
            key="throttled",
            title="Mailgun is limiting this account's sending (throttled or on probation)",
            explanation=(
                "Mailgun answered that a sending limit was exceeded. New accounts, and "
                "accounts put on probation after bounces or sudden volume spikes, may send "
                "only a few hundred messages an hour. Tidings keeps the message and retries "
                "it at the time Mailgun gave."
            ),
            fix=(
                "Complete Mailgun's Business Verification, remove addresses that bounce "
                "consistently, and avoid bulk sends to addresses that were never verified."
            ),
        ),
        _rule_throttled,
    ),
    (
        Hint(
            key="unauthorized",
            title="Mailgun refused the API key (401 Forbidden)",
            explanation=(
                "The API key is wrong, was revoked, or is a domain sending key used for "
                "something other than sending; or the domain lives in the other region "
                "(Mailgun's US and EU regions are separate: an EU domain answers 401 on "
                "api.mailgun.net)."
            ),
            fix=(
                "Check the API key in Mailgun's dashboard (API Security) and that the host is "
                "api.eu.mailgun.net for an EU domain, api.mailgun.net for a US one."
            ),
        ),
        lambda status, message, code: status == 401,
    ),
    (
        Hint(
            key="domain-not-found",
            title="Mailgun does not know this sending domain (404)",
            explanation=(
                "The domain is misspelt, was deleted, or belongs to the other region (US vs EU)."
            ),
            fix=(
                "Check the domain name in the provider configuration against Mailgun's "
                "Domains page, and the region: api.eu.mailgun.net for EU domains."
            ),
        ),
        lambda status, message, code: status == 404 or bool(_DOMAIN_NOT_FOUND.search(message)),
    ),
    (
        Hint(
            key="sandbox-domain-recipient",
            title="A Mailgun sandbox domain may only send to authorised recipients",
            explanation=(
                "Mailgun's sandbox domains (sandbox….mailgun.org) deliver only to addresses "
                "listed as authorised recipients of the account."
            ),
            fix=(
                "Add the recipient under the sandbox domain's Authorized Recipients, or add "
                "and verify your own sending domain and use it."
            ),
        ),
        lambda status, message, code: bool(_SANDBOX_DOMAIN.search(message)),
    ),
    (
        Hint(
            key="not-allowed-to-send",
            title="Mailgun does not allow this domain to send",
            explanation=(
                "The account or the domain is not in a state that may send: the account is "
                "not activated, the domain is not verified, or the account is disabled or "
                "limited (free accounts, large batches before verification)."
            ),
            fix=(
                "Activate the account (the e-mail Mailgun sent at sign-up), verify the "
                "domain's DNS records in Mailgun's dashboard, and check the account's status "
                "and any message from Mailgun support."
            ),
        ),
        lambda status, message, code: bool(_NOT_ALLOWED.search(message)),
    ),
    (
        Hint(
            key="options-too-large",
            title="Too much data in o:, h:, v: and t: fields",
            explanation=(
                "Mailgun limits all send options (fields starting with o:, h:, v: or t:) "
                "to 16 kB together."
            ),
            fix="Send less custom data (variables, headers) with the message.",
        ),
        lambda status, message, code: bool(_OPTIONS_TOO_BIG.search(message)),
    ),
    (
        Hint(
            key="message-too-large",
            title="The message is too large for Mailgun (413)",
            explanation="Mailgun accepts messages of at most 25 MB, attachments included.",
            fix="Send smaller attachments, or a link to the file instead.",
        ),
        lambda status, message, code: status == 413,
    ),
    (
        Hint(
            key="recipient-domain-no-mx",
            title="The recipient's domain cannot receive mail (no MX record)",
            explanation=(
                "The domain of the recipient's address has no mail server: usually a typo "
                "(gmai.com, hotmial.com) or a domain that does not handle e-mail."
            ),
            fix="Correct the recipient's address; nothing on the sending side will help.",
        ),
        lambda status, message, code: code == 498 or bool(_RECIPIENT_NO_MX.search(message)),
    ),
    (
        Hint(
            key="suppressed-bounce",
            title="Mailgun did not send: this address bounced before (605)",
            explanation=(
                "The address is on the domain's bounce list after an earlier hard bounce; "
                "Mailgun drops further messages to it to protect the domain's reputation."
            ),
            fix=(
                "Confirm the address is valid now, then remove it from Tidings' suppression "
                "list (tidings suppressions delete ADDRESS, or DELETE /suppressions/ADDRESS): "
                "that removes it from the domain's lists at Mailgun too."
            ),
        ),
        lambda status, message, code: code == 605,
    ),
    (
        Hint(
            key="suppressed-unsubscribe",
            title="Mailgun did not send: the recipient unsubscribed (606)",
            explanation=(
                "The address is on the domain's unsubscribe list at Mailgun; Tidings puts it "
                "on its own suppression list too, so it will not try again."
            ),
            fix=(
                "Respect it; only the recipient should ask to be resubscribed. If they do, "
                "remove it from Tidings' suppression list, which removes it at Mailgun too."
            ),
        ),
        lambda status, message, code: code == 606,
    ),
    (
        Hint(
            key="suppressed-complaint",
            title="Mailgun did not send: the recipient marked mail as spam (607)",
            explanation=(
                "The address is on the domain's complaints list at Mailgun; Tidings puts it "
                "on its own suppression list too, so it will not try again."
            ),
            fix=(
                "Do not send to it again unless the recipient asks for mail explicitly; then "
                "remove it from Tidings' suppression list, which removes it at Mailgun too."
            ),
        ),
        lambda status, message, code: code == 607,
    ),
    (
        Hint(
            key="no-such-mailbox",
            title="The recipient's mailbox does not exist",
            explanation=(
                "The receiving server answered that there is no such user or mailbox "
                "(5.1.1): the address is wrong or was closed."
            ),
            fix="Correct or remove the address; sending again will bounce again.",
        ),
        lambda status, message, code: status is None and bool(_NO_MAILBOX.search(message)),
    ),
    (
        Hint(
            key="too-old",
            title="Mailgun gave up after retrying for hours",
            explanation=(
                "The receiving server kept deferring the message (temporary failures) until "
                "Mailgun's retry window (about 8 hours) ran out."
            ),
            fix="Check the earlier temporary failures for the receiving server's reason.",
        ),
        lambda status, message, code: status is None and bool(_TOO_OLD.search(message)),
    ),
)


def hint_for(
    status_code: int | None, message: str | None, delivery_code: int | None = None
) -> Hint | None:
    """The first known failure matching what Mailgun said, or ``None``.

    ``status_code`` is the HTTP status of Mailgun's answer (``None`` for delivery events),
    ``message`` Mailgun's or the receiving server's words, ``delivery_code`` the
    ``delivery-status.code`` of an event.
    """
    text = message or ""
    for hint, matches in HINTS:
        if matches(status_code, text, delivery_code):
            return hint
    return None
