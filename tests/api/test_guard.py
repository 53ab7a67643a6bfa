"""The request guard's pure parts: which limit a path gets, and the one JSON body check."""

from __future__ import annotations

from tidings.api.guard import BodyLimits, json_problem

LIMITS = BodyLimits(
    default=100,
    by_prefix=(("/send", 1000, "SEND"), ("/webhooks/mailgun", 500, "HOOK")),
    exempt=("/sandbox",),
)


def limit(path: str) -> int:
    rule = LIMITS.for_path(path)
    assert rule is not None
    return rule[0]


def test_limits_by_prefix_with_a_default_and_an_exempt_mount() -> None:
    assert LIMITS.for_path("/send") == (1000, "the limit of /send (set by SEND)")
    assert limit("/webhooks/mailgun/abc") == 500
    assert limit("/webhooks/endpoints") == 100
    assert limit("/sender") == 100  # not /send
    assert LIMITS.for_path("/sandbox/v3/d/messages") is None
    assert limit("/sandboxes") == 100


def test_json_problem_names_the_field_and_leaves_non_json_to_the_route() -> None:
    assert json_problem(b'{"message": {"to": {"user_id": "a\\u0000"}}}') == (
        "message.to.user_id contains a NUL character (\\u0000), which cannot be stored"
    )
    assert "nested deeper than" in (json_problem(b"[" * 100_000 + b"]" * 100_000) or "")
    assert json_problem(b'{"ok": "\\ud83d\\udc4b"}') is None
    assert json_problem(b"key=value&x=1") is None  # a form: not this check's business
    assert json_problem(b"{not json") is None  # the route says what it expected
