"""The committed openapi.yaml is the contract: generated requests never get a 5xx and responses conform."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.app import create_app
from service.config import PROJECT_ROOT
from service.outcomes.library import load_measures
from service.terminology import load_terminology
from tests.api.builders import questionnaire, response
from tests.api.scored import scored_questionnaire, scored_response
from tests.api.tasks import task
from tests.conftest import Keys, jwt_settings

# The contract document itself is checked in tests/api/test_ops.py (schemathesis skips its own schema path).
OPERATIONS = [
    result.ok().label
    for result in schemathesis.openapi.from_path(PROJECT_ROOT / "openapi.yaml").get_all_operations()
    if result.ok().label != "GET /openapi.yaml"
]


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def contract_app(sqlite_template: Path, tmp_path: Path, keys: Keys) -> Iterator[Flask]:
    path = tmp_path / "contract.sqlite3"
    shutil.copyfile(sqlite_template, path)
    app = create_app(jwt_settings(f"sqlite:///{path}", keys))
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {keys.token()}"
    # Stored data, so that reads, searches and includes have something to find.
    client.post("/fhir/Questionnaire", json=questionnaire())
    client.post("/fhir/QuestionnaireResponse", json=response())
    created = client.post("/fhir/Task", json=task(due=None, start=None)).get_json()
    client.post(f"/fhir/Task/{created['id']}/$invite")
    client.post("/fhir/Questionnaire", json=scored_questionnaire())
    client.post("/fhir/QuestionnaireResponse", json=scored_response(("often", "never", "always")))
    load_measures(app.web.services, PROJECT_ROOT / "measures")  # so that $evaluate-measure has Measures to run
    # The shipped terminology, so that $expand, $validate-code and $lookup have value sets and codes to find.
    load_terminology(app.web.services, PROJECT_ROOT / "terminology", PROJECT_ROOT / "questionnaires")
    yield app
    app.web.services.db.dispose()


@pytest.mark.parametrize("label", OPERATIONS)
def test_every_endpoint_keeps_the_contract(contract_app: Flask, label: str, keys: Keys) -> None:
    authorization = {"Authorization": f"Bearer {keys.token()}"}
    schema = schemathesis.openapi.from_wsgi("/openapi.yaml", contract_app)
    operation = next(r.ok() for r in schema.get_all_operations() if r.ok().label == label)

    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: schemathesis.Case) -> None:
        # FHIR servers ignore unknown parameters by design, so "negative data must be rejected" does not
        # apply; what the contract promises is no server error and responses exactly as documented.
        case.call_and_validate(checks=CHECKS, headers=authorization)

    check()
