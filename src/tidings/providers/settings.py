"""Provider configuration settings: their schema (the catalog), validation, and masking.

Settings keys are snake_case, as in Courier's Providers API. Secrets are write-only: an answer
shows at most their last four characters.

Per-message overrides (``providers.mailgun.override.config``) are merged here, by
:func:`merge_override`, under one rule for every provider: keys stay with their hosts. An
override that changes a setting naming a target (``TARGET_FIELDS``: where calls go) must
bring its own credentials (``CREDENTIAL_FIELDS``), and may only name the provider's own API
hosts (``KNOWN_ORIGINS``) or origins the operator trusts (``TIDINGS_PROVIDER_HOSTS``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from tidings.domain.errors import ValidationError, key_path
from tidings.domain.network import origin_of
from tidings.providers.base import ProviderSettings

SECRET_FIELDS = ("api_key", "webhook_signing_key")


class RateLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate: float = Field(gt=0, description="Messages per period.")
    period: Literal["second", "minute", "hour"] = "second"

    @property
    def per_second(self) -> float:
        return self.rate / {"second": 1.0, "minute": 60.0, "hour": 3600.0}[self.period]


PollingMode = Literal["on", "off", "auto"]


S = TypeVar("S", bound=BaseModel)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def override_values(model: type[BaseModel], override: Mapping[str, Any]) -> dict[str, Any]:
    """The settings an override sets, snake_case (``apiKey`` and ``api_key`` both work);
    what the provider does not let a message override is left out."""
    allowed: tuple[str, ...] = getattr(model, "OVERRIDABLE", ())
    values: dict[str, Any] = {}
    for key, value in override.items():
        name = _snake(key)
        if name in allowed and value is not None and value != "":
            values[name] = value
    return values


def _as_url(value: Any) -> str:
    text = str(value).strip()
    return text if "://" in text else f"https://{text}"


def _same_target(new: Any, old: Any) -> bool:
    """Two spellings of one target (``api.mailgun.net``, ``https://api.mailgun.net/``)."""
    if new is None or old is None:
        return new is old
    return _as_url(new).rstrip("/").lower() == _as_url(old).rstrip("/").lower()


def merge_override(
    model: type[S],
    stored: Mapping[str, Any] | None,
    override: Mapping[str, Any],
    *,
    trusted: frozenset[str],
    path: str,
) -> S | None:
    """A stored configuration with one message's override applied, under the rule that
    keys stay with their hosts (see the module docstring). Raises a ValidationError naming
    the override's field (``path`` is the override's own path); ``stored`` may be ``None``
    when it is not known yet (``/send`` with no configuration): then only what can be told
    without it is checked, and ``None`` is returned."""
    changes = override_values(model, override)
    targets: tuple[str, ...] = getattr(model, "TARGET_FIELDS", ())
    credentials: tuple[str, ...] = getattr(model, "CREDENTIAL_FIELDS", ())
    known: frozenset[str] = getattr(model, "KNOWN_ORIGINS", frozenset())
    # A stored configuration that does not validate is the configuration's fault, not the
    # override's: its own error, unprefixed.
    original: S | None = model.model_validate(dict(stored)) if stored is not None else None
    merged: S | None = None
    try:
        if stored is not None:
            merged = model.model_validate({**stored, **changes})
        elif "host" in changes:
            changes["host"] = base_url_for(str(changes["host"]))
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        name = str((first.get("loc") or ("config",))[0])
        message = str(first.get("msg", "is invalid")).removeprefix("Value error, ")
        raise ValidationError(key_path(path, _camel(name)), message) from None
    except ValueError as exc:
        raise ValidationError(key_path(path, "host"), str(exc)) from None
    for name in targets:
        if name not in changes:
            continue
        new = getattr(merged, name) if merged is not None else changes[name]
        old = getattr(original, name) if original is not None else None
        if _same_target(new, old):
            continue
        field = key_path(path, _camel(name))
        missing = [c for c in credentials if not changes.get(c)]
        if missing and original is not None:
            raise ValidationError(
                field,
                f"differs from the stored configuration's and so needs its own "
                f"{key_path(path, _camel(missing[0]))}: a stored key is only ever sent to "
                "the stored host",
            )
        wanted = origin_of(_as_url(new))
        if wanted not in known | trusted:
            own = ", ".join(sorted(o.rsplit(":", 1)[0] for o in known)) if name == "host" else ""
            raise ValidationError(
                field,
                f"may only name {own + ' or ' if own else ''}a base URL the operator lists in "
                f"TIDINGS_PROVIDER_HOSTS (got {wanted})",
            )
    return merged


def base_url_for(host: str) -> str:
    """``api.eu.mailgun.net`` → ``https://api.eu.mailgun.net``; full URLs are kept (no slash)."""
    host = host.strip()
    if "://" in host:
        parts = urlsplit(host)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be a host name or an http(s):// base URL")
        return host.rstrip("/")
    if not host or "/" in host or " " in host:
        raise ValueError("must be a host name such as api.eu.mailgun.net")
    return f"https://{host.lower()}"


def mask(secret: str | None) -> str | None:
    """Show a secret's last four characters at most (none at all when it is short)."""
    if not secret:
        return None
    return "****" + secret[-4:] if len(secret) >= 12 else "****"


def hide_password(url: str) -> str:
    """A URL with any password in it replaced by ``****`` (proxy URLs carry credentials)."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = f"{parts.username}:****@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def public_settings(
    settings: dict[str, Any], secret_fields: tuple[str, ...] = SECRET_FIELDS
) -> dict[str, Any]:
    """Stored settings as an answer may show them: secrets masked, proxy passwords hidden."""
    shown = dict(settings)
    for name in secret_fields:
        if shown.get(name):
            shown[name] = mask(shown[name])
    if shown.get("proxy_url"):
        shown["proxy_url"] = hide_password(shown["proxy_url"])
    return shown


_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _catalog_type(annotation: Any) -> str:
    for arg in (annotation, *getattr(annotation, "__args__", ())):
        if arg in _JSON_TYPES:
            return _JSON_TYPES[arg]
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return "object"
    return "string"


def settings_catalog(model: type[ProviderSettings]) -> dict[str, Any]:
    """One provider's settings in Courier's catalog shape: ``{field: {type, required,
    values?}}`` plus a description and a write-only flag."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        kind, values = model.CATALOG_TYPES.get(name, (_catalog_type(info.annotation), None))
        entry: dict[str, Any] = {
            "type": kind,
            "required": info.is_required(),
            "description": info.description,
            "write_only": name in model.SECRET_FIELDS,
        }
        if values:
            entry["values"] = values
        fields[name] = entry
    return fields
