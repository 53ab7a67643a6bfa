"""The doctor's vocabulary: one check's result, and a report made of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["ok", "warn", "fail"]
_RANK: dict[Status, int] = {"ok": 0, "warn": 1, "fail": 2}


@dataclass(frozen=True, slots=True)
class Check:
    """One thing the doctor looked at: what it found (``detail``) and, unless it is fine,
    what a person should do about it (``fix``)."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def worst(statuses: list[Status]) -> Status:
    return max(statuses, key=_RANK.__getitem__, default="ok")


@dataclass(slots=True)
class DoctorReport:
    """Every check for one provider configuration, in the order a person should read them
    (how Tidings reaches Mailgun first: nothing else works if that does not)."""

    provider_id: str
    domain: str
    host: str
    checks: list[Check] = field(default_factory=list)

    @property
    def status(self) -> Status:
        return worst([check.status for check in self.checks])

    def check(self, name: str) -> Check:
        """The check called ``name`` (for tests and the UI)."""
        for found in self.checks:
            if found.name == name:
                return found
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider_id": self.provider_id,
            "domain": self.domain,
            "host": self.host,
            "status": self.status,
            "checks": [check.as_dict() for check in self.checks],
        }
