"""A real SMTP server on loopback (aiosmtpd) for the SMTP provider's tests: plain, STARTTLS
or implicit TLS with trustme certificates, optional AUTH, and handlers that refuse or drop."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

PASSWORD = "s3cret-smtp-password-1234"


@dataclass
class Recorder:
    """Records what the server received; ``rcpt_answer``/``data_answer`` refuse on demand."""

    envelopes: list[Envelope] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    rcpt_answer: Callable[[str], str | None] = lambda address: None
    mail_answer: str | None = None
    data_answer: str | None = None
    drop_after_data: bool = False

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.mail_answer:
            return self.mail_answer
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        answer = self.rcpt_answer(address)
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.drop_after_data:
            transport = server.transport
            assert isinstance(transport, asyncio.Transport)
            transport.abort()  # the message was read; the final reply never goes out
            return "250 OK"
        if self.data_answer:
            return self.data_answer
        self.envelopes.append(envelope)
        return "250 2.0.0 Queued"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append(data.login.decode())
        ok = data.login == b"user" and data.password == PASSWORD.encode()
        return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    recorder: Recorder
    port: int


@pytest.fixture
def smtp_server(ca: trustme.CA) -> Iterator[Callable[..., Server]]:
    started: list[Controller] = []

    def start(mode: str = "none", *, auth: bool = False) -> Server:
        recorder = Recorder()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(server_ctx)
        kwargs: dict[str, Any] = {}
        if mode == "starttls":
            kwargs.update(tls_context=server_ctx, require_starttls=True)
        elif mode == "tls":
            kwargs.update(ssl_context=server_ctx, auth_require_tls=False)
        if auth:
            kwargs.update(authenticator=recorder.authenticate, auth_required=True)
        port = _free_port()
        controller = Controller(recorder, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        started.append(controller)
        return Server(recorder, port)

    yield start
    for controller in started:
        controller.stop()
