"""A faithful local stand-in for Mailgun's HTTP API: ``tidings sandbox``.

Messages API, Events API with paging, domain webhooks API, signed webhooks with Mailgun's
retry schedule, outcomes chosen by the recipient's ``+tag``, switchable faults, and an
inspection API with an inbox page. Self-contained: it imports nothing else of Tidings.

    from tidings.sandbox import Sandbox, SandboxSettings
    sandbox = Sandbox(SandboxSettings(domains=["mg.example.test"]))
    app = sandbox.asgi()            # standalone layout; asgi("") to mount at /sandbox
"""

from tidings.sandbox.app import create_app
from tidings.sandbox.core import Sandbox
from tidings.sandbox.settings import (
    DEFAULT_API_KEY,
    DEFAULT_DOMAIN,
    DEFAULT_SIGNING_KEY,
    FaultSettings,
    SandboxSettings,
)

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_DOMAIN",
    "DEFAULT_SIGNING_KEY",
    "FaultSettings",
    "Sandbox",
    "SandboxSettings",
    "create_app",
]
