"""schemathesis against the OpenAPI document of a running server (issue 14): for generated
requests of every operation (a few each, bounded), no answer is a server error, and every
status an operation gives is one its OpenAPI entry describes.

The operations are driven with hypothesis directly (schemathesis' pytest plugin does not load
under this pytest), each with a fixed number of examples and no example database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from conftest import LiveServer

EXAMPLES = 4


@pytest.fixture(scope="module")
def live_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    data_dir: Path = tmp_path_factory.mktemp("schemathesis")
    server = LiveServer(data_dir, ["--no-auth"]).start()
    try:
        yield schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    finally:
        server.stop()


def test_no_server_error_and_only_documented_statuses(live_schema: object) -> None:
    failures: list[str] = []
    statuses: dict[int, int] = {}
    operations = [result.ok() for result in live_schema.get_all_operations()]  # type: ignore[attr-defined]
    assert len(operations) > 30
    for operation in operations:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=operation.as_strategy())
        def exercise(case: schemathesis.Case) -> None:
            response = case.call_and_validate(
                checks=[not_a_server_error, status_code_conformance], timeout=60
            )
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        try:
            exercise()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:600]}")
    assert not failures, "\n\n".join(failures)
    assert sum(statuses.values()) >= len(operations)  # every operation was called
    assert any(400 <= status < 500 for status in statuses)  # refusals were met and checked
