"""The UI session cookie: signed, expiring, never the key, and ended by a key change."""

from __future__ import annotations

from tidings.api.auth import KeyRing, issue_session, session_valid
from tidings.store.api_keys import hash_key

KEY = "tk_configured_key_0123456789"
NOW = 1_700_000_000.0


def test_a_session_is_an_expiry_and_a_signature_never_the_key() -> None:
    ring = KeyRing(KEY, [])
    value = issue_session(ring, now=NOW, ttl_s=60)
    expiry, _, signature = value.partition(".")
    assert expiry == str(int(NOW) + 60)
    assert len(signature) == 64
    assert KEY not in value and hash_key(KEY) not in value
    assert session_valid(ring, value, now=NOW + 59)
    assert not session_valid(ring, value, now=NOW + 60)


def test_every_process_with_the_same_keys_accepts_it() -> None:
    hashes = [hash_key("tk_generated_a"), hash_key("tk_generated_b")]
    value = issue_session(KeyRing(KEY, hashes), now=NOW)
    # Another process (or this one after a restart) derives the same secret; order of the
    # stored hashes does not matter.
    assert session_valid(KeyRing(KEY, list(reversed(hashes))), value, now=NOW)


def test_changing_the_keys_ends_every_session() -> None:
    value = issue_session(KeyRing(KEY, []), now=NOW)
    assert not session_valid(KeyRing("tk_rotated_key_9876543210", []), value, now=NOW)
    rotated = KeyRing(KEY, [])
    rotated.add_hash(hash_key("tk_new_generated"))
    assert not session_valid(rotated, value, now=NOW)


def test_forged_or_malformed_values_are_refused() -> None:
    ring = KeyRing(KEY, [])
    good = issue_session(ring, now=NOW)
    expiry, _, signature = good.partition(".")
    for value in (
        None,
        "",
        "garbage",
        f"{expiry}.",
        f".{signature}",
        f"{int(expiry) + 3600}.{signature}",  # a later expiry with the old signature
        f"{expiry}.{'0' * 64}",
        f"-1.{signature}",
        KEY,
    ):
        assert not session_valid(ring, value, now=NOW), value


def test_no_key_at_all_opens_nothing() -> None:
    # With no key the secret would be derived from nothing, so anyone could compute it.
    empty = KeyRing(None, [])
    assert not session_valid(empty, issue_session(empty, now=NOW), now=NOW)
