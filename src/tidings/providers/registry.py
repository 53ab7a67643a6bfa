"""The provider registry: which providers this installation has, found by key.

Built-in providers are listed here; a third-party package adds one through the
``tidings.providers`` entry-point group (``postmark = "tidings_postmark:PostmarkProvider"``),
so adding Postmark or SES is one new package and no edit anywhere else. Workers, routes and
pages ask the registry for a provider by the key stored with each configuration and then
speak only the contract (:mod:`tidings.providers.base`).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from tidings.providers.base import Hint, Provider, ProviderContext

__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "Providers",
    "UnknownProvider",
    "all_hints",
    "catalog",
    "channels",
    "classes",
    "hint_for",
    "keys",
    "provider_class",
]

ENTRY_POINT_GROUP = "tidings.providers"
# key -> "module:Class", imported on first use.
BUILTIN: Mapping[str, str] = {
    "mailgun": "tidings.providers.mailgun.provider:MailgunProvider",
    "smtp": "tidings.providers.smtp.provider:SmtpProvider",
}


class UnknownProvider(KeyError):
    """No provider has this key."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"'{self.key}' is not a provider Tidings has; known: {', '.join(keys())}"


def _load(target: str) -> type[Provider]:
    module_name, _, attr = target.partition(":")
    found: Any = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(found, type) and issubclass(found, Provider)):
        raise TypeError(f"{target} is not a tidings.providers.base.Provider subclass")
    return found


@cache
def _classes() -> dict[str, type[Provider]]:
    found: dict[str, type[Provider]] = {}
    for key, target in BUILTIN.items():
        try:
            found[key] = _load(target)
        except ModuleNotFoundError:
            continue  # a built-in whose optional dependency is not installed
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name not in found:
            found[point.name] = _load(point.value)
    for key, cls in found.items():
        if cls.key != key:
            raise TypeError(f"provider registered as {key!r} says its key is {cls.key!r}")
    return found


def keys() -> tuple[str, ...]:
    """Every provider key, built-ins first."""
    return tuple(_classes())


def classes() -> dict[str, type[Provider]]:
    """Provider key -> its class, built-ins first."""
    return dict(_classes())


def all_hints() -> tuple[Hint, ...]:
    """Every provider's known problems, for pages that show a stored hint."""
    return tuple(hint for cls in _classes().values() for hint in cls.hints)


def hint_for(
    key: str | None, status: int | None, message: str | None, code: int | None = None
) -> Hint | None:
    """The provider ``key``'s hint for an answer or an event's words (any provider's when
    the key is not known)."""
    found = _classes()
    candidates = [found[key]] if key in found else list(found.values())
    for cls in candidates:
        hint = cls.hint_for(status, message, code)
        if hint is not None:
            return hint
    return None


def channels() -> dict[str, str]:
    """Provider key -> the channel it delivers (``email``)."""
    return {key: cls.channel for key, cls in _classes().items()}


def provider_class(key: str) -> type[Provider]:
    try:
        return _classes()[key]
    except KeyError:
        raise UnknownProvider(key) from None


def catalog() -> dict[str, Any]:
    """What ``GET /providers/catalog`` answers: each provider's settings schema, in Courier's
    shape (``{field: {type, required, values?}}``) plus a description and write-only flag."""
    from tidings.providers.settings import settings_catalog

    return {
        "results": [
            {
                "provider": cls.key,
                "name": cls.name,
                "channel": cls.channel,
                "description": cls.description,
                "settings": settings_catalog(cls.settings_model),
            }
            for cls in _classes().values()
        ]
    }


class Providers:
    """One live instance of every provider, for one process; close it when done."""

    def __init__(self, context: ProviderContext | None = None) -> None:
        self.context = context or ProviderContext()
        self._live: dict[str, Provider] = {}

    def get(self, key: str) -> Provider:
        live = self._live.get(key)
        if live is None:
            live = provider_class(key)(self.context)
            self._live[key] = live
        return live

    def __getitem__(self, key: str) -> Provider:
        return self.get(key)

    def __iter__(self) -> Iterator[Provider]:
        return iter([self.get(key) for key in keys()])

    async def close(self) -> None:
        live, self._live = list(self._live.values()), {}
        for provider in live:
            await provider.close()

    async def __aenter__(self) -> Providers:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
