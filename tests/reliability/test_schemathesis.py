"""Schemathesis over a live server's /openapi.json: no answer is a 5xx, every answer is one
the schema documents (status, content type, body, headers).

A bounded number of generated requests per operation (``TIDINGS_SCHEMATHESIS_EXAMPLES``,
default 10), each through the real HTTP stack of a real server with its API key; every
failure is collected and shown, not only the first.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks

from tests.e2e.conftest import RunningSandbox, RunningTidings
from tests.e2e.conftest import mailgun_sandbox as mailgun_sandbox
from tests.e2e.conftest import start_tidings as start_tidings

EXAMPLES = int(os.environ.get("TIDINGS_SCHEMATHESIS_EXAMPLES", "10"))
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]
# Operations that would change what the rest of the run sees (the key that authenticates
# it, the stream that never ends) are left out; everything else is fuzzed.
SKIP = {"GET /messages/stream", "GET /messages/{message_id}/stream"}


def _exerciser(
    operation: Any,
    label: str,
    url: str,
    auth: dict[str, str],
    statuses: Counter[int],
    failures: dict[str, str],
) -> Callable[[], None]:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def exercise(case: Any) -> None:
        response = case.call(base_url=url, headers=auth, timeout=30)
        statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # collect: one report per operation
            failures.setdefault(label, f"{type(exc).__name__}: {exc}"[:1500])

    result: Callable[[], None] = exercise
    return result


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings overrides: the default SQLite file, or a fresh PostgreSQL database (whose
    column widths and text rules SQLite does not enforce)."""
    if request.param == "sqlite":
        return {}
    return {"database_url": str(request.getfixturevalue("postgres_url"))}


def test_schemathesis_finds_no_5xx_and_no_undocumented_answer(
    start_tidings: Callable[..., RunningTidings],
    mailgun_sandbox: RunningSandbox,
    backend: dict[str, Any],
) -> None:
    server = start_tidings(**backend)
    server.add_provider(mailgun_sandbox, alias="main")
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    auth = {"Authorization": f"Bearer {server.api_key}"}
    statuses: Counter[int] = Counter()
    failures: dict[str, str] = {}
    operations = 0

    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        if label in SKIP:
            continue
        operations += 1

        _exerciser(operation, label, server.url, auth, statuses, failures)()

    total = sum(statuses.values())
    by_class = Counter(f"{code // 100}xx" for code in statuses.elements())
    print(
        f"\nschemathesis ({server.settings.database_url.split(':')[0]}): {operations} operations, "
        f"{total} requests, "
        f"by class {dict(sorted(by_class.items()))}, by status {dict(sorted(statuses.items()))}, "
        f"{len(failures)} operations with failures"
    )
    for label, failure in failures.items():
        print(f"--- {label}\n{failure}")
    assert by_class.get("5xx", 0) == 0, "server errors: see above"
    assert not failures
