"""SMTP replies and failures -> :class:`SendOutcome` kinds, and the hints that explain them.

Pure: the client says in which step of the transaction something happened (:class:`Step`)
and what the server answered; this module decides. The table:

========================================  ==========  ==============
what happened                             kind        provider_fault
========================================  ==========  ==============
2xx to the final DATA                     SENT        –
4xx anywhere (421, 450, 451, 452, 454…)   RETRY       –
5xx at connect / EHLO / STARTTLS / AUTH   FAILED      True
5xx to MAIL FROM (sender refused)         FAILED      True
5xx to RCPT TO that says relaying/auth    FAILED      True
  (5.7.1 relay denied, 530 auth required)
5xx to RCPT TO otherwise (550/551/553…)   FAILED      False
5xx to DATA / after the message           FAILED      False (True for 530/535/538)
TLS unavailable or certificate refused    FAILED      True
server offers no AUTH but we have a user  FAILED      True
policy refuses the target                 FAILED      True (nothing sent)
network error or timeout before DATA      RETRY       –
network error after the message was sent  IN_DOUBT    –
========================================  ==========  ==============

A 5xx to RCPT is FAILED as the recipient's (Courier's undeliverable), never failed over; a
5xx about the relay or our account is the provider's, so routing may try the next one.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass

from tidings.providers.base import Hint, OutcomeKind

__all__ = ["HINTS", "Step", "Verdict", "classify_failure", "classify_reply", "hint_for"]


class Step(enum.StrEnum):
    """Where in the transaction an answer or a failure came."""

    CONNECT = "connect"  # TCP connect, implicit TLS, the greeting
    EHLO = "ehlo"
    STARTTLS = "starttls"
    AUTH = "auth"
    MAIL = "mail"  # MAIL FROM
    RCPT = "rcpt"  # RCPT TO
    DATA = "data"  # the DATA command, before the server said 354
    MESSAGE = "message"  # the message was written; waiting for the final reply


_ACCOUNT_CODES = frozenset({530, 534, 535, 538})
_RELAY_WORDS = re.compile(
    r"relay|relaying|not permitted|authenticat|5\.7\.1|5\.7\.0|sender.*(not|denied)", re.I
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with one answer: the outcome kind, and whether it is the provider's fault."""

    kind: OutcomeKind
    provider_fault: bool = False


def _about_relay(code: int, message: str) -> bool:
    return code in _ACCOUNT_CODES or bool(_RELAY_WORDS.search(message))


def classify_reply(code: int, message: str, step: Step) -> Verdict:
    """One SMTP reply (``code`` and its words) received at ``step``."""
    if 200 <= code < 400:
        # 354 is only ever expected at DATA; any other 2xx/3xx where a refusal was raised
        # means the step went through, so the caller never classifies it. Be safe anyway.
        return Verdict(OutcomeKind.SENT)
    if 400 <= code < 500:
        return Verdict(OutcomeKind.RETRY)
    if step in (Step.CONNECT, Step.EHLO, Step.STARTTLS, Step.AUTH, Step.MAIL):
        return Verdict(OutcomeKind.FAILED, provider_fault=True)
    if step is Step.RCPT:
        return Verdict(OutcomeKind.FAILED, provider_fault=_about_relay(code, message))
    return Verdict(OutcomeKind.FAILED, provider_fault=code in _ACCOUNT_CODES)


def classify_failure(step: Step) -> Verdict:
    """A broken connection or a timeout at ``step``: worth another attempt, unless the
    message may already have been taken (then in doubt: SMTP keeps no log to ask)."""
    if step is Step.MESSAGE:
        return Verdict(OutcomeKind.IN_DOUBT)
    return Verdict(OutcomeKind.RETRY)


# -- hints -------------------------------------------------------------------------------

AUTH_FAILED = Hint(
    key="smtp_auth_failed",
    title="The SMTP server refused the username or password",
    explanation="The relay answered AUTH with a refusal (535/534/538), so nothing was sent.",
    fix="Check the username and password in the provider settings (an app password may be "
    "needed where the account has two-factor sign-in), then send again.",
)
AUTH_REQUIRED = Hint(
    key="smtp_auth_required",
    title="The SMTP server requires authentication",
    explanation="The relay answered 530: it takes mail only from signed-in clients.",
    fix="Set username and password in the provider settings (and use starttls or tls).",
)
TLS_REQUIRED = Hint(
    key="smtp_tls_required",
    title="The SMTP server requires TLS",
    explanation="The relay refuses to continue on a plain connection.",
    fix="Set security to starttls (port 587) or tls (port 465).",
)
TLS_FAILED = Hint(
    key="smtp_tls_failed",
    title="TLS with the SMTP server failed",
    explanation="The relay offers no TLS on this port, or its certificate could not be "
    "verified for its host name.",
    fix="Check that security matches the port (starttls 587, tls 465); for a relay with a "
    "private CA, put that CA's PEM in ca_cert. Verification is never turned off.",
)
RELAY_DENIED = Hint(
    key="smtp_relay_denied",
    title="The SMTP server will not relay for this sender",
    explanation="The relay refused the sender or refused to relay to outside domains "
    "(5.7.1): this account or From address is not allowed to send through it.",
    fix="Sign in (username/password), or use a From address on a domain the relay accepts.",
)
MAILBOX_UNKNOWN = Hint(
    key="smtp_mailbox_unknown",
    title="The recipient's mailbox does not exist",
    explanation="The server refused the recipient address (550/551/553): mail to it will "
    "keep failing.",
    fix="Correct the address in the recipient's profile; sending again will not help.",
)

HINTS: Sequence[Hint] = (
    AUTH_FAILED,
    AUTH_REQUIRED,
    TLS_REQUIRED,
    TLS_FAILED,
    RELAY_DENIED,
    MAILBOX_UNKNOWN,
)

_TLS_WORDS = re.compile(r"starttls|\btls\b|ssl|certificate|encrypt", re.I)
_MAILBOX_WORDS = re.compile(r"mailbox|user|recipient|address|no such|unknown|5\.1\.[0-9]", re.I)


def hint_for(status: int | None, message: str | None, code: int | None = None) -> Hint | None:
    """The known problem behind an SMTP reply ``status`` and its words, if one is known."""
    words = message or ""
    status = status if status is not None else code
    if status is None:
        return TLS_FAILED if _TLS_WORDS.search(words) else None
    if status in (534, 535, 538):
        return TLS_REQUIRED if status == 538 else AUTH_FAILED
    if status == 530:
        return TLS_REQUIRED if _TLS_WORDS.search(words) else AUTH_REQUIRED
    if 500 <= status < 600 and _TLS_WORDS.search(words):
        return TLS_REQUIRED
    if status in (550, 551, 553, 554) and _RELAY_WORDS.search(words):
        return RELAY_DENIED
    if status in (550, 551, 553) and _MAILBOX_WORDS.search(words):
        return MAILBOX_UNKNOWN
    return None
