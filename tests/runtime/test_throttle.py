"""Wrong keys are throttled per client address and overall: the buckets (with a clock the test
moves), then a real server answering 429 with Courier's body and Retry-After."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from tests.e2e.conftest import API_KEY, RunningTidings, start_tidings
from tidings.runtime.throttle import MAX_TRACKED, Limits, Refused, Throttle, client_key

__all__ = ["start_tidings"]

LIMITS = Limits(burst=5, per_minute=6.0, global_burst=20, global_per_minute=60.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def throttle(clock: Clock) -> Throttle:
    return Throttle(LIMITS, clock=clock)


def refused(throttle: Throttle, host: str) -> Refused | None:
    try:
        throttle.check(host)
    except Refused as exc:
        return exc
    return None


def test_a_client_that_mistyped_a_few_times_is_never_refused(throttle: Throttle) -> None:
    for _ in range(LIMITS.burst - 1):
        assert refused(throttle, "198.51.100.1") is None
        throttle.failed("198.51.100.1")
    assert refused(throttle, "198.51.100.1") is None  # the right key is looked at


def test_after_the_burst_everything_from_the_address_is_refused_a_right_key_too(
    throttle: Throttle, clock: Clock
) -> None:
    for _ in range(LIMITS.burst):
        assert refused(throttle, "198.51.100.1") is None
        throttle.failed("198.51.100.1")
    refusal = refused(throttle, "198.51.100.1")
    assert refusal is not None
    # One more try every 60 / per_minute seconds: that is the wait it is told.
    assert refusal.retry_after_s == 10
    assert "try again in 10 s" in refusal.message
    # The check comes before the key: whatever it sends now, it gets the same answer.
    assert refused(throttle, "198.51.100.1") is not None
    # Other addresses are not concerned.
    assert refused(throttle, "198.51.100.2") is None


def test_a_throttled_client_that_stops_is_back_after_the_wait_it_was_told(
    throttle: Throttle, clock: Clock
) -> None:
    for _ in range(LIMITS.burst):
        throttle.failed("198.51.100.1")
    refusal = refused(throttle, "198.51.100.1")
    assert refusal is not None
    clock.now += refusal.retry_after_s - 0.5
    assert refused(throttle, "198.51.100.1") is not None
    clock.now += 0.5
    assert refused(throttle, "198.51.100.1") is None
    # A guesser that keeps going gets one try per interval, never a burst again.
    throttle.failed("198.51.100.1")
    assert refused(throttle, "198.51.100.1") is not None


def test_refused_requests_do_not_lengthen_the_wait(throttle: Throttle, clock: Clock) -> None:
    for _ in range(LIMITS.burst):
        throttle.failed("198.51.100.1")
    for _ in range(1000):  # a client hammering while refused
        assert refused(throttle, "198.51.100.1") is not None
    clock.now += 10
    assert refused(throttle, "198.51.100.1") is None


def test_many_addresses_together_are_throttled_but_known_clients_keep_working(
    throttle: Throttle,
) -> None:
    throttle.succeeded("192.0.2.10")  # a client that has shown a valid key
    for n in range(LIMITS.global_burst):
        host = f"203.0.113.{n}"
        assert refused(throttle, host) is None
        throttle.failed(host)  # one guess each: no single address is over its burst
    newcomer = refused(throttle, "203.0.113.250")
    assert newcomer is not None and "many addresses" in newcomer.message
    assert newcomer.retry_after_s == 1  # 60 per minute overall
    assert refused(throttle, "192.0.2.10") is None


def test_each_episode_is_logged_once_with_the_address(throttle: Throttle, clock: Clock) -> None:
    with capture_logs() as logs:
        for _ in range(LIMITS.burst):
            throttle.failed("198.51.100.7")
        for _ in range(50):
            refused(throttle, "198.51.100.7")
        clock.now += 60  # the bucket is full again: the episode is over
        assert refused(throttle, "198.51.100.7") is None
    started = [e for e in logs if e["log_level"] == "warning"]
    assert len(started) == 1, logs
    assert started[0]["client"] == "198.51.100.7"
    ended = [e for e in logs if e["event"] == "wrong-key throttling over"]
    assert len(ended) == 1 and ended[0]["refused"] == 50


def test_ipv6_addresses_count_by_their_64_and_mapped_ipv4_as_ipv4() -> None:
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9")
    assert client_key("2001:db8:1:2::1") != client_key("2001:db8:1:3::1")
    assert client_key("::ffff:198.51.100.1") == "198.51.100.1"
    assert client_key(None) == "unknown"
    assert client_key("testclient") == "testclient"


def test_memory_stays_bounded(throttle: Throttle, clock: Clock) -> None:
    for n in range(MAX_TRACKED + 500):
        throttle.failed(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}")
    assert throttle.tracked <= MAX_TRACKED


# -- a real server -------------------------------------------------------------------------


def _client(server: RunningTidings, source: str = "127.0.0.1", **headers: str) -> httpx.Client:
    """A client whose connections come from ``source`` (any 127.x address is this machine)."""
    return httpx.Client(
        base_url=server.url,
        headers=headers,
        transport=httpx.HTTPTransport(local_address=source),
        timeout=30,
    )


@pytest.fixture
def server(start_tidings: Callable[..., RunningTidings]) -> Iterator[RunningTidings]:
    # Three wrong keys, then one a minute: nothing refills while the test runs.
    yield start_tidings(auth_fail_burst=3, auth_fail_per_minute=1.0)


def test_wrong_keys_get_401_then_429_with_courier_body_and_retry_after(
    server: RunningTidings,
) -> None:
    with _client(server, Authorization="Bearer tk_wrong") as wrong:
        codes = [wrong.get("/messages").status_code for _ in range(3)]
        assert codes == [401, 401, 401]
        answer = wrong.get("/messages")
    assert answer.status_code == 429
    body: dict[str, Any] = answer.json()
    assert body["type"] == "rate_limit_error" and "Too many wrong keys" in body["message"]
    assert 1 <= int(answer.headers["Retry-After"]) <= 60
    # The right key from the same address is refused as well while it is throttled...
    with _client(server, Authorization=f"Bearer {API_KEY}") as right:
        assert right.get("/messages").status_code == 429
        # ...and so is the login form (an HTML page saying so, with the same header).
        login = right.post("/ui/login", data={"key": API_KEY}, follow_redirects=False)
        assert login.status_code == 429 and "Too many wrong keys" in login.text
        assert 1 <= int(login.headers["Retry-After"]) <= 60
        # ...and the pages.
        assert right.get("/ui/", follow_redirects=False).status_code == 429
    # Another address is not concerned.
    with _client(server, "127.0.0.2", Authorization=f"Bearer {API_KEY}") as other:
        assert other.get("/messages").status_code == 200


def test_wrong_keys_at_the_login_form_and_dead_session_cookies_count_too(
    server: RunningTidings,
) -> None:
    with _client(server, "127.0.0.3") as browser:
        for _ in range(2):
            page = browser.post("/ui/login", data={"key": "tk_wrong"}, follow_redirects=False)
            assert page.status_code == 401
        # An empty form is no guess: it does not count.
        assert browser.post("/ui/login", data={"key": ""}).status_code == 401
        browser.cookies.set("tidings_session", "never-issued")
        dead = browser.get("/ui/", follow_redirects=False)
        assert dead.status_code == 303  # to the login form; and it was the third failure
        browser.cookies.clear()
        assert browser.post("/ui/login", data={"key": API_KEY}).status_code == 429


def test_a_client_that_stops_guessing_is_let_in_again_shortly(
    start_tidings: Callable[..., RunningTidings],
) -> None:
    server = start_tidings(auth_fail_burst=2, auth_fail_per_minute=60.0)
    with _client(server, Authorization="Bearer tk_wrong") as wrong:
        codes: list[int] = []
        while 429 not in codes:
            codes.append(wrong.get("/messages").status_code)
            assert len(codes) < 50, codes
    assert codes[:2] == [401, 401]
    # One more try a second: the right key gets in once that second is over (poll for it
    # with a deadline, never a fixed wait).
    deadline = time.monotonic() + 30
    with _client(server, Authorization=f"Bearer {API_KEY}") as right:
        while (status := right.get("/messages").status_code) == 429:
            assert time.monotonic() < deadline, "still throttled"
            time.sleep(0.05)
    assert status == 200
