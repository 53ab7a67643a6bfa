"""The request guard's pure parts: which limit a path gets, and the one JSON body check."""

from __future__ import annotations

import re

from tidings.api.guard import BodyLimits, RequestIds, json_problem

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


def test_json_problem_looks_closely_at_whatever_its_byte_scan_does_not_clear() -> None:
    # The scan clears most bodies without parsing them; each of these it must not clear.
    assert json_problem(b"[" * 64 + b"]" * 64) is None
    assert "nested deeper than 64" in (json_problem(b"[" * 65 + b"]" * 65) or "")
    assert "lone surrogate" in (json_problem(b'{"a": "\\uD800"}') or "")
    assert "lone surrogate" in (json_problem(b'{"a": "\xed\xa0\x80"}') or "")  # raw, UTF-8
    assert "NUL" in (json_problem('{"a": "\\u0000"}'.encode("utf-16-le")) or "")
    assert "a key that" in (json_problem(b'{"k\\u0000": 1}') or "")
    # Brackets and escapes inside strings only make it look closer: still fine.
    assert json_problem(b'{"a": "' + b"[" * 100 + b'", "b": "\\\\u0000 \\u00e9"}') is None


def test_request_ids_have_the_format_of_ids_and_do_not_repeat() -> None:
    ids = RequestIds()
    made = [ids.new() for _ in range(1000)]
    assert len(set(made)) == 1000
    assert all(re.fullmatch(r"req_[0-9a-f]{32}", i) for i in made)
