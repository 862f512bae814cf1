"""Property-based API testing with schemathesis: every operation, authenticated as an admin.

Schemathesis generates requests from the OpenAPI document (valid and invalid ones) and
checks that werk never answers with a server error (and, where the operations document
their error answers, that each status is documented). The operations are read from an
unstarted app at collection time, so each one is a test of its own; the requests go to
one started werk. A few examples per operation keep the whole file within minutes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case
from schemathesis.checks import not_a_server_error, status_code_conformance
from tests.conftest import make_settings
from tests.integration.iam.api_support import Werk, started_werk

from werk.api import create_app
from werk.runtime import Runtime

EXAMPLES_PER_OPERATION = 12
# Operations that document every status they answer with; the others document only success.
DOCUMENTED = ("/api/v1/iam/", "/api/v1/auth/")


def _document() -> dict[str, object]:
    settings = make_settings(Path(tempfile.gettempdir()) / "werk-schemathesis-unstarted")
    return create_app(Runtime(settings), web=False).openapi()


SCHEMA = schemathesis.openapi.from_dict(_document())
OPERATIONS = [(op.method.upper(), op.path) for op in (r.ok() for r in SCHEMA.get_all_operations())]


@pytest.fixture(scope="module")
def werk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Werk]:
    """One werk for the module."""
    with started_werk(tmp_path_factory.mktemp("werk")) as started:
        yield started


def bounded(case: Case) -> None:
    """Keep generated waits short: a command may otherwise wait a minute for its machine."""
    if case.operation.path.endswith("/commands") and isinstance(case.body, dict):
        case.body["wait_s"] = 0


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_operation_fails_with_a_server_error(werk: Werk, method: str, path: str) -> None:
    operation = SCHEMA[path][method]
    checks = [not_a_server_error]
    if path.startswith(DOCUMENTED) and not path.startswith("/api/v1/auth/oidc/"):
        checks.append(status_code_conformance)

    @settings(
        max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=operation.as_strategy())
    def call(case: Case) -> None:
        bounded(case)
        response = case.call(app=werk.client.app, headers=werk.admin.headers)
        case.validate_response(response, checks=checks)

    call()
