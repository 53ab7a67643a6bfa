"""Keys stay with their hosts: merging a per-message override into a stored configuration."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.domain.errors import ValidationError
from tidings.providers.mailgun.settings import MailgunSettings
from tidings.providers.settings import merge_override

PATH = "message.providers.mailgun.override.config"
STORED = {"api_key": "key-stored-0123456789", "domain": "mg.example.com"}
LOCAL = "http://127.0.0.1:8025"


def merge(
    override: dict[str, Any],
    stored: dict[str, Any] | None = STORED,
    trusted: frozenset[str] = frozenset(),
) -> MailgunSettings | None:
    return merge_override(MailgunSettings, stored, override, trusted=trusted, path=PATH)


def test_same_host_keeps_the_stored_key() -> None:
    merged = merge({"host": "api.mailgun.net", "domain": "other.example.com"})
    assert merged is not None
    assert merged.api_key == STORED["api_key"]
    assert merged.domain == "other.example.com"
    assert merged.host == "https://api.mailgun.net"


@pytest.mark.parametrize("host", ["api.eu.mailgun.net", "https://api.eu.mailgun.net", LOCAL])
def test_another_host_without_a_key_is_refused(host: str) -> None:
    trusted = frozenset({"http://127.0.0.1:8025"})
    with pytest.raises(ValidationError) as caught:
        merge({"host": host}, trusted=trusted)
    assert caught.value.path == f"{PATH}.host"
    assert f"{PATH}.apiKey" in caught.value.message


def test_another_mailgun_host_with_its_own_key() -> None:
    merged = merge({"host": "api.eu.mailgun.net", "apiKey": "key-eu-0000000000"})
    assert merged is not None
    assert (merged.host, merged.api_key) == ("https://api.eu.mailgun.net", "key-eu-0000000000")


@pytest.mark.parametrize(
    "host",
    ["http://attacker.example:8080", "http://127.0.0.1:9999", "https://api.mailgun.net.evil"],
)
def test_other_hosts_are_refused_even_with_a_key(host: str) -> None:
    with pytest.raises(ValidationError) as caught:
        merge({"host": host, "api_key": "key-own-0000000000"})
    assert caught.value.path == f"{PATH}.host"
    assert "TIDINGS_PROVIDER_HOSTS" in caught.value.message


def test_operator_hosts_with_a_key_are_allowed() -> None:
    merged = merge(
        {"host": LOCAL, "apiKey": "key-own-0000000000"},
        trusted=frozenset({"http://127.0.0.1:8025"}),
    )
    assert merged is not None and merged.host == LOCAL


def test_proxy_override_follows_the_same_rule() -> None:
    with pytest.raises(ValidationError) as caught:
        merge({"proxyUrl": "http://proxy.internal:3128"})
    assert caught.value.path == f"{PATH}.proxyUrl"
    assert "apiKey" in caught.value.message
    with pytest.raises(ValidationError, match="TIDINGS_PROVIDER_HOSTS"):
        merge({"proxyUrl": "http://proxy.internal:3128", "apiKey": "key-own-0000000000"})
    trusted = frozenset({"http://proxy.internal:3128"})
    merged = merge(
        {"proxy_url": "http://proxy.internal:3128", "apiKey": "key-own-0000000000"},
        trusted=trusted,
    )
    assert merged is not None and merged.proxy_url == "http://proxy.internal:3128"


def test_without_a_stored_configuration_only_the_host_rule_applies() -> None:
    assert merge({"host": "api.eu.mailgun.net"}, stored=None) is None
    with pytest.raises(ValidationError, match="TIDINGS_PROVIDER_HOSTS"):
        merge({"host": LOCAL}, stored=None)
    with pytest.raises(ValidationError) as caught:
        merge({"host": "ftp://x"}, stored=None)
    assert caught.value.path == f"{PATH}.host"


def test_a_bad_value_names_the_override_field() -> None:
    with pytest.raises(ValidationError) as caught:
        merge({"domain": "not a domain"})
    assert caught.value.path == f"{PATH}.domain"
