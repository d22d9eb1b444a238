"""Property-based fuzzing of the REST API from its own OpenAPI document: every operation,
authenticated as an administrator on a seeded database, with generated parameters and
bodies. No answer may be a server error or differ from the documented response schema."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from app.auth import issue_token

CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
EXAMPLES_PER_OPERATION = 5


def _fuzz(operation, headers) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
              derandomize=True, suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


def test_every_operation_answers_without_server_errors_or_schema_violations(seeded,
                                                                          make_user):
    admin = make_user(email="fuzz-admin@example.org", role="admin")
    headers = {"Authorization": f"Bearer {issue_token(admin)}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", seeded)
    failures, operations = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        try:
            _fuzz(operation, headers)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - reported below
            failures.append(f"{operation.label}: {type(exc).__name__}: {exc}")
    assert operations > 50
    assert not failures, "\n\n".join(failures)
