"""``tidings sandbox``: run the sandbox standalone under uvicorn."""

from __future__ import annotations

import socket

import typer

from tidings.sandbox.settings import (
    DEFAULT_API_KEY,
    DEFAULT_DOMAIN,
    DEFAULT_SIGNING_KEY,
    FaultSettings,
    SandboxSettings,
)


def build_settings(
    *,
    host: str = "127.0.0.1",
    port: int = 8025,
    domain: list[str] | None = None,
    api_key: str = DEFAULT_API_KEY,
    signing_key: str = DEFAULT_SIGNING_KEY,
    event_delay: float = 0.1,
    seed: int | None = None,
    retry_scale: float = 1.0,
    visibility_lag: float = 0.0,
    webhook: list[str] | None = None,
    fault_500: float = 0.0,
    fault_503: float = 0.0,
    fault_429: float = 0.0,
    fault_420: float = 0.0,
    drop_rate: float = 0.0,
    latency_ms: float = 0.0,
    account_disabled: bool = False,
    retry_after: float = 2.0,
) -> SandboxSettings:
    """Command-line values → settings (kept apart from the command so tests can call it)."""
    rates = {"500": fault_500, "503": fault_503, "429": fault_429, "420": fault_420}
    faults = FaultSettings(
        status_rates={code: rate for code, rate in rates.items() if rate},
        drop_rate=drop_rate,
        latency_ms=latency_ms,
        account_disabled=account_disabled,
        retry_after_s=retry_after,
        seed=seed,
    )
    if sum(rates.values()) + drop_rate > 1.0:
        raise typer.BadParameter("fault rates and --drop-rate add up to more than 1")
    return SandboxSettings(
        host=host,
        port=port,
        domains=list(domain or [DEFAULT_DOMAIN]),
        api_key=api_key,
        signing_key=signing_key,
        event_delay=event_delay,
        visibility_lag=visibility_lag,
        retry_scale=retry_scale,
        seed=seed,
        faults=faults,
        webhook_urls=list(webhook or []),
    )


def sandbox(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8025, "--port", help="Port to listen on."),
    domain: list[str] = typer.Option(
        [DEFAULT_DOMAIN], "--domain", help="A sending domain to serve (repeat for several)."
    ),
    api_key: str = typer.Option(DEFAULT_API_KEY, "--api-key", help="API key (Basic auth api:KEY)."),
    signing_key: str = typer.Option(
        DEFAULT_SIGNING_KEY, "--signing-key", help="HTTP webhook signing key."
    ),
    event_delay: float = typer.Option(
        0.1, "--event-delay", help="Seconds between the steps of a message's life."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed ids and fault draws."),
    retry_scale: float = typer.Option(
        1.0, "--retry-scale", help="Multiply the webhook retry schedule (5 m … 4 h)."
    ),
    visibility_lag: float = typer.Option(
        0.0, "--visibility-lag", help="Seconds before an event shows in the Events API."
    ),
    webhook: list[str] = typer.Option(
        [], "--webhook", help="Register URL for every webhook kind of every domain."
    ),
    fault_500: float = typer.Option(0.0, "--fault-500", help="Rate of 500 answers (0-1)."),
    fault_503: float = typer.Option(0.0, "--fault-503", help="Rate of 503 answers (0-1)."),
    fault_429: float = typer.Option(0.0, "--fault-429", help="Rate of 429 answers (0-1)."),
    fault_420: float = typer.Option(0.0, "--fault-420", help="Rate of 420 answers (0-1)."),
    drop_rate: float = typer.Option(
        0.0, "--drop-rate", help="Rate of accepted sends whose connection is dropped (0-1)."
    ),
    latency_ms: float = typer.Option(0.0, "--latency-ms", help="Latency added to each send."),
    account_disabled: bool = typer.Option(
        False, "--account-disabled", help="Answer every send 400: account not activated."
    ),
    retry_after: float = typer.Option(
        2.0, "--retry-after", help="Seconds ahead the 420/429 'try again after' time lies."
    ),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request."),
) -> None:
    """Run the local Mailgun-compatible sandbox."""
    import uvicorn

    from tidings.sandbox.app import create_app

    settings = build_settings(
        host=host,
        port=port,
        domain=domain,
        api_key=api_key,
        signing_key=signing_key,
        event_delay=event_delay,
        seed=seed,
        retry_scale=retry_scale,
        visibility_lag=visibility_lag,
        webhook=webhook,
        fault_500=fault_500,
        fault_503=fault_503,
        fault_429=fault_429,
        fault_420=fault_420,
        drop_rate=drop_rate,
        latency_ms=latency_ms,
        account_disabled=account_disabled,
        retry_after=retry_after,
    )
    listener = _bind(host, port)
    typer.echo(
        f"Mailgun sandbox on http://{host}:{port}  (api_url for the SDK)\n"
        f"  domains: {', '.join(settings.domains)}\n"
        f"  API key: {settings.api_key}   webhook signing key: {settings.signing_key}\n"
        f"  inbox:   http://{host}:{port}/sandbox/"
    )
    config = uvicorn.Config(
        create_app(settings), host=host, port=port, access_log=access_log, log_level="info"
    )
    uvicorn.Server(config).run(sockets=[listener])


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything is printed: a port in use is one line."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        typer.echo(
            f"error: cannot listen on {host}:{port}: {exc.strerror or exc}. Is another server "
            "running there? Choose another port with --port.",
            err=True,
        )
        raise typer.Exit(1) from None
    return sock
