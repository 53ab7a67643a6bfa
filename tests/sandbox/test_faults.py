"""Each fault mode, seen from a real client."""

from __future__ import annotations

import re
import time
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
import requests

from tests.sandbox.conftest import DOMAIN, KEY, Running, basic_message, send
from tidings.sandbox import FaultSettings

URL = f"/v3/{DOMAIN}/messages"


def set_faults(running: Running, body: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(running.api("/faults"), json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def post(running: Running) -> requests.Response:
    return requests.post(running.base + URL, data=basic_message(), auth=("api", KEY))


def statuses(running: Running, n: int) -> list[int]:
    return [post(running).status_code for _ in range(n)]


@pytest.mark.parametrize(
    ("code", "message"), [("500", "Internal Server Error"), ("503", "Service Unavailable")]
)
def test_server_errors(running: Running, code: str, message: str) -> None:
    set_faults(running, {"status_rates": {code: 1}})
    response = send(running.base, basic_message())
    assert response.status_code == int(code)
    assert response.json() == {"message": message}


def test_rates_are_seeded_and_repeatable(running: Running) -> None:
    body = {"status_rates": {"500": 0.3, "503": 0.2}, "seed": 7}
    set_faults(running, body)
    first = statuses(running, 40)
    set_faults(running, body)
    second = statuses(running, 40)
    assert first == second
    assert set(first) == {200, 500, 503}
    accepted = requests.get(running.api("/messages")).json()
    assert len(accepted) == first.count(200) * 2


def test_429_has_retry_after_and_a_try_again_date(running: Running) -> None:
    set_faults(running, {"status_rates": {"429": 1}, "retry_after_s": 3})
    before = time.time()
    response = post(running)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert int(response.headers["X-RateLimit-Reset"]) >= int(before)
    message = response.json()["message"]
    match = re.fullmatch(
        rf"Domain {re.escape(DOMAIN)} is not allowed to send: recipient limit exceeded, "
        r"try again after (\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} UTC)",
        message,
    )
    assert match
    assert parsedate_to_datetime(match.group(1)).timestamp() >= int(before) + 2


def test_420_probation_throttling(running: Running) -> None:
    set_faults(running, {"status_rates": {"420": 1}})
    response = post(running)
    assert response.status_code == 420
    assert re.fullmatch(
        rf"Domain {re.escape(DOMAIN)} is not allowed to send: recipient limit exceeded, "
        r"try again after \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} UTC",
        response.json()["message"],
    )


def test_account_not_activated(running: Running) -> None:
    set_faults(running, {"account_disabled": True})
    response = send(running.base, basic_message())
    assert response.status_code == 400
    assert response.json()["message"].startswith(
        f"Domain {DOMAIN} is not allowed to send: Please activate your Mailgun account"
    )


def test_latency_is_added(running: Running) -> None:
    set_faults(running, {"latency_ms": 150})
    started = time.monotonic()
    assert post(running).status_code == 200
    assert time.monotonic() - started >= 0.15  # a lower bound: the sleep is guaranteed


def test_dropped_connection_still_stores_the_message(running: Running) -> None:
    set_faults(running, {"drop_rate": 1})
    with pytest.raises(requests.ConnectionError):
        post(running)
    [stored] = requests.get(running.api("/messages")).json()
    events = requests.get(running.api(f"/messages/{stored['id']}/events")).json()
    assert events[0]["event"] == "accepted"
    counts = requests.get(running.api("/stats")).json()["requests"]["POST /v3/{domain}/messages"]
    assert counts == {"dropped": 1}


def test_get_shows_faults_and_empty_body_clears_them(running: Running) -> None:
    in_force = set_faults(
        running,
        {
            "status_rates": {"500": 0.2, "503": 0, "429": 0.1, "420": 0},
            "drop_rate": 0.05,
            "latency_ms": 0,
            "account_disabled": False,
            "retry_after_s": 2,
            "seed": 7,
        },
    )
    assert in_force == requests.get(running.api("/faults")).json()
    assert in_force["status_rates"] == {"500": 0.2, "503": 0.0, "429": 0.1, "420": 0.0}
    assert in_force["drop_rate"] == 0.05
    assert in_force["seed"] == 7
    cleared = set_faults(running, {})
    assert cleared["status_rates"] == {"500": 0.0, "503": 0.0, "429": 0.0, "420": 0.0}
    assert cleared["drop_rate"] == 0 and cleared["account_disabled"] is False
    assert statuses(running, 5) == [200] * 5


@pytest.mark.parametrize(
    "body",
    [
        {"status_rates": {"404": 0.5}},
        {"drop_rate": 2},
        {"colour": "red"},
        {"status_rates": {"500": 0.8, "503": 0.5}},
    ],
)
def test_invalid_faults_are_refused(running: Running, body: dict[str, Any]) -> None:
    response = requests.post(running.api("/faults"), json=body)
    assert response.status_code == 400
    assert response.json()["message"]


def test_faults_given_at_start(make_running: Any) -> None:
    running = make_running(faults=FaultSettings(status_rates={"503": 1.0}))
    assert post(running).status_code == 503
    assert requests.get(running.api("/faults")).json()["status_rates"]["503"] == 1.0
