"""Sending one :class:`SmtpRequest` with aiosmtplib: connect (to an address the outbound
policy checked), TLS, AUTH, MAIL/RCPT/DATA, QUIT; every failure classified by the step it
happened in (:mod:`tidings.providers.smtp.answers`).

One connection per send, closed after it: no pool. A pooled SMTP session can be in any
state after a failure (a half-sent DATA, a server that timed us out), and relays limit
messages per connection; a fresh session per message is the safe choice.

DNS rebinding: the host is resolved once, each address is checked by the policy, and the
socket is connected to a checked address; TLS still verifies the certificate against the
configured host name (aiosmtplib's ``hostname`` with our own socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Callable

import aiosmtplib
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

from tidings.domain.network import literal_address
from tidings.providers.base import OutcomeKind, ProviderContext, SendOutcome
from tidings.providers.smtp.answers import Step, classify_failure, classify_reply, hint_for
from tidings.providers.smtp.message import SmtpRequest, masker, record
from tidings.providers.smtp.settings import SmtpConfig

__all__ = ["send_request"]


class _Refused(Exception):
    """A step the server refused, or a requirement it cannot meet (no TLS, no AUTH)."""

    def __init__(self, step: Step, code: int | None, message: str) -> None:
        super().__init__(message)
        self.step, self.code, self.message = step, code, message


class _PolicyRefused(Exception):
    pass


def _tls_context(config: SmtpConfig) -> ssl.SSLContext:
    # Verification on, always: a private CA is trusted by giving it, never by skipping.
    return (
        ssl.create_default_context(cadata=config.ca_cert)
        if config.ca_cert
        else (ssl.create_default_context())
    )


async def _addresses(config: SmtpConfig, context: ProviderContext) -> list[str]:
    outbound = context.outbound
    if outbound is None:
        if literal_address(config.host) is not None:
            return [config.host]
        infos = await asyncio.get_running_loop().getaddrinfo(
            config.host, config.port, type=socket.SOCK_STREAM
        )
        return list(dict.fromkeys(str(info[4][0]) for info in infos))
    policy = outbound.policy
    if policy.allow_private or policy.trusts(config.target):
        found = await outbound.addresses(config.host, config.port)
        return [str(a) for a in found]
    early = policy.refuses_host(config.host)
    if early:
        raise _PolicyRefused(f"{config.host} is {early}")
    found = await outbound.addresses(config.host, config.port)
    kept = [str(a) for a in found if not policy.refuses_address(a)]
    if not kept:
        reasons = ", ".join(f"{a} ({policy.refuses_address(a)})" for a in found)
        raise _PolicyRefused(f"{config.host} resolves to {reasons}")
    return kept


async def _connect_socket(addresses: list[str], port: int) -> socket.socket:
    loop = asyncio.get_running_loop()
    last: OSError | None = None
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (address, port))
        except OSError as exc:
            sock.close()
            last = exc
            continue
        return sock
    raise last or OSError("no address to connect to")


async def _transaction(
    request: SmtpRequest,
    config: SmtpConfig,
    context: ProviderContext,
    progress: list[Step],
    notes: list[str],
) -> tuple[int, str]:
    progress.append(Step.CONNECT)
    addresses = await _addresses(config, context)
    async with asyncio.timeout(context.connect_timeout_s):
        sock = await _connect_socket(addresses, config.port)
    smtp = aiosmtplib.SMTP(
        hostname=config.host,
        sock=sock,
        use_tls=config.security == "tls",
        start_tls=False,
        tls_context=_tls_context(config),
        timeout=context.read_timeout_s,
        local_hostname=config.local_hostname,
    )
    try:
        try:
            await smtp.connect()
        except aiosmtplib.SMTPConnectResponseError as exc:
            raise _Refused(Step.CONNECT, exc.code, exc.message) from None
        progress.append(Step.EHLO)
        await smtp.ehlo()
        if config.security == "starttls":
            progress.append(Step.STARTTLS)
            if not smtp.supports_extension("starttls"):
                raise _Refused(Step.STARTTLS, None, "the server does not offer STARTTLS")
            await smtp.starttls()
            await smtp.ehlo()  # what the server offers changes once the connection is secure
        if config.username and config.password:
            progress.append(Step.AUTH)
            if not smtp.supports_extension("auth"):
                raise _Refused(Step.AUTH, None, "the server offers no AUTH on this connection")
            # One mechanism, not aiosmtplib's try-each: a refused password is one 535, and
            # some servers stall a second attempt on the same connection.
            methods = [m.lower() for m in smtp.server_auth_methods]
            if "plain" in methods:
                await smtp.auth_plain(config.username, config.password)
            elif "login" in methods:
                await smtp.auth_login(config.username, config.password)
            else:
                await smtp.login(config.username, config.password)
        progress.append(Step.MAIL)
        await smtp.mail(request.sender)
        progress.append(Step.RCPT)
        accepted = 0
        for rcpt in request.recipients:
            try:
                await smtp.rcpt(rcpt)
                accepted += 1
            except aiosmtplib.SMTPRecipientRefused as exc:
                if rcpt in request.primary or 400 <= exc.code < 500:
                    raise
                notes.append(f"{rcpt} refused: {exc.code} {exc.message}")
        progress.append(Step.DATA)
        start = await smtp.execute_command(b"DATA")
        if start.code != 354:
            raise _Refused(Step.DATA, start.code, start.message)
        # From here the server may have the whole message: a break is in doubt.
        progress.append(Step.MESSAGE)
        data = PERIOD_REGEX.sub(b"..", normalize_message_line_endings(request.data))
        assert smtp.protocol is not None
        smtp.protocol.write(data + b".\r\n")
        reply = await smtp.protocol.read_response(timeout=context.read_timeout_s)
        if not 200 <= reply.code < 300:
            raise _Refused(Step.MESSAGE, reply.code, reply.message)
        # The message was taken; a QUIT that fails changes nothing.
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await smtp.quit()
        return reply.code, reply.message
    finally:
        smtp.close()


async def send_request(
    request: SmtpRequest, config: SmtpConfig, context: ProviderContext
) -> SendOutcome:
    """Send one transaction. Never raises for the server's answers or the network."""
    mask: Callable[[str], str] = masker(config.secrets())
    shown = record(request, config.secrets())
    progress: list[Step] = []
    notes: list[str] = []
    started = time.perf_counter()

    def done(**kwargs: object) -> SendOutcome:
        return SendOutcome(
            request=shown,
            duration_ms=(time.perf_counter() - started) * 1000,
            **kwargs,  # type: ignore[arg-type]
        )

    try:
        async with asyncio.timeout(context.total_timeout_s):
            code, message = await _transaction(request, config, context, progress, notes)
    except _PolicyRefused as exc:
        return done(
            kind=OutcomeKind.FAILED,
            provider_fault=True,
            error_message=f"refused by the outbound network policy: {exc} (nothing was sent)",
        )
    except (_Refused, aiosmtplib.SMTPResponseException) as exc:
        step = exc.step if isinstance(exc, _Refused) else progress[-1]
        code_ = exc.code
        words = mask(str(exc.message))
        if code_ is None:
            hint = hint_for(None, words)
            return done(
                kind=OutcomeKind.FAILED,
                provider_fault=True,
                error_message=f"{step.value}: {words}",
                hint=hint.text() if hint else None,
            )
        verdict = classify_reply(code_, words, step)
        hint = hint_for(code_, words)
        return done(
            kind=verdict.kind,
            provider_fault=verdict.provider_fault,
            status_code=code_,
            response_body=f"{code_} {words}",
            error_message=f"{config.target} answered {code_} {words} at {step.value}",
            hint=hint.text() if hint else None,
        )
    except ssl.SSLError as exc:
        hint = hint_for(None, "tls certificate")
        return done(
            kind=OutcomeKind.FAILED,
            provider_fault=True,
            error_message=f"TLS with {config.target} failed: {mask(str(exc))}",
            hint=hint.text() if hint else None,
        )
    except (aiosmtplib.SMTPException, OSError, TimeoutError, EOFError) as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ssl.SSLError):
            hint = hint_for(None, "tls certificate")
            return done(
                kind=OutcomeKind.FAILED,
                provider_fault=True,
                error_message=f"TLS with {config.target} failed: {mask(str(cause))}",
                hint=hint.text() if hint else None,
            )
        step = progress[-1] if progress else Step.CONNECT
        verdict = classify_failure(step)
        what = type(exc).__name__
        detail = mask(str(exc)) or what
        suffix = (
            " after the message was written: the server may have taken it"
            if verdict.kind is OutcomeKind.IN_DOUBT
            else " (nothing was sent)"
        )
        return done(
            kind=verdict.kind,
            error_message=f"{config.target}: {detail} at {step.value}{suffix}",
        )
    return done(
        kind=OutcomeKind.SENT,
        status_code=code,
        response_body=mask(f"{code} {message}" + (f"; {'; '.join(notes)}" if notes else "")),
        provider_message_id=request.message_id,
    )
