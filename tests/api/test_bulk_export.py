"""Bulk Data export through the API: kick-off, polling, the manifest, ndjson files, _type, _since, cancel, access."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir.resources.R4B import get_fhir_model_class
from flask import Flask
from sqlalchemy import select
from werkzeug.test import TestResponse

from service.config import Settings
from service.exports.runner import Exporter
from service.store.models import ExportChunk, ExportJob
from tests.api.builders import questionnaire, response
from tests.api.scored import scored_questionnaire, scored_response
from tests.conftest import Fhir, Keys, jwt_settings

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


@pytest.fixture
def settings(database_url: str, keys: Keys, tmp_path: Path) -> Settings:
    return jwt_settings(database_url, keys).with_(export_poll_seconds=0.2, export_since_margin_seconds=0.0)


@pytest.fixture
def run_exports(app: Flask, settings: Settings) -> Iterator[Any]:
    """Do what `proms worker` does with waiting exports, here and now."""

    def run(**changes: Any) -> None:
        exporter = Exporter(dataclasses.replace(app.web.services, settings=settings.with_(**changes)), "test-worker")
        while exporter.run_next(threading.Event()):
            pass

    yield run


def kick_off(fhir: Fhir, path: str = "$export", headers: dict[str, str] | None = None) -> str:
    started = fhir.get(path, headers={**ASYNC, **(headers or {})})
    assert started.status_code == 202, started.get_data(as_text=True)
    location: str = started.headers["Content-Location"]
    assert "/$export-status/" in location
    return location.split("/fhir/", 1)[1]


def manifest(fhir: Fhir, status_path: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        result = fhir.get(status_path)
        if result.status_code == 200:
            assert result.mimetype == "application/json"
            body: dict[str, Any] = result.get_json()
            return body
        assert result.status_code in (202, 429), result.get_data(as_text=True)
        assert time.monotonic() < deadline
        time.sleep(0.25)


def download(fhir: Fhir, url: str) -> list[dict[str, Any]]:
    result = fhir.get(url.split("/fhir/", 1)[1], headers={"Accept": "application/fhir+ndjson"})
    assert result.status_code == 200, result.get_data(as_text=True)
    assert result.mimetype == "application/fhir+ndjson"
    lines = [orjson.loads(line) for line in result.get_data().splitlines()]
    result.close()  # a served file stays open until its response is closed, as a WSGI server does
    return lines


def exported(fhir: Fhir, body: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    files: dict[str, list[dict[str, Any]]] = {}
    for output in body["output"]:
        lines = download(fhir, output["url"])
        assert len(lines) == output["count"]
        files.setdefault(output["type"], []).extend(lines)
    return files


def test_export_everything_end_to_end(fhir: Fhir, run_exports: Any, settings: Settings) -> None:
    fhir.create(scored_questionnaire())
    for day, answers in ((1, ("never", "never", "never")), (8, ("often", "often", "always"))):
        fhir.create(scored_response(answers, authored=f"2024-01-0{day}T10:00:00Z"))
    status_path = kick_off(fhir)
    queued = fhir.get(status_path)
    assert queued.status_code == 202
    assert queued.headers["X-Progress"].startswith("queued")
    assert int(queued.headers["Retry-After"]) >= 1
    too_soon = fhir.get(status_path)
    assert too_soon.status_code == 429 and too_soon.headers["Retry-After"]
    run_exports()
    time.sleep(settings.export_poll_seconds)
    body = manifest(fhir, status_path)
    assert body["requiresAccessToken"] is True
    assert body["request"] == f"{settings.base_url}/$export"
    assert body["transactionTime"].endswith("Z") and body["error"] == []
    files = exported(fhir, body)
    assert set(files) == {"QuestionnaireResponse", "Observation", "Questionnaire", "Provenance"}
    assert len(files["QuestionnaireResponse"]) == 2 and len(files["Provenance"]) == 2
    assert len(files["Observation"]) == fhir.get("Observation?_summary=count").get_json()["total"]
    for resources in files.values():
        for resource in resources:
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)  # valid R4 (R4B models)
    health_data = [output for output in body["output"] if output["type"] != "Questionnaire"]
    assert fhir.get("AuditEvent?type=operation-export-file").get_json()["total"] == len(health_data)


def test_type_filter_post_kick_off_and_file_splitting(fhir: Fhir, run_exports: Any) -> None:
    fhir.create(questionnaire())
    ids = {fhir.create(response(authored=f"2024-02-{day:02d}T10:00:00Z"))["id"] for day in range(1, 13)}
    started = fhir.post(
        "$export",
        {"resourceType": "Parameters", "parameter": [
            {"name": "_type", "valueString": "QuestionnaireResponse"},
            {"name": "_outputFormat", "valueString": "application/ndjson"},
        ]},
        headers={"Prefer": "respond-async"},
    )  # fmt: skip
    assert started.status_code == 202
    run_exports(export_file_max_bytes=2500)
    body = manifest(fhir, started.headers["Content-Location"].split("/fhir/", 1)[1])
    assert {output["type"] for output in body["output"]} == {"QuestionnaireResponse"}
    assert len(body["output"]) > 1  # split past the size limit
    parts = [output["url"].rsplit("/", 1)[1] for output in body["output"]]
    assert parts == [f"{n}.ndjson" for n in range(1, len(parts) + 1)]
    assert {r["id"] for r in exported(fhir, body)["QuestionnaireResponse"]} == ids


def test_since_pulls_what_changed_nothing_missed_nothing_repeated(fhir: Fhir, run_exports: Any) -> None:
    fhir.create(questionnaire())
    first_ids = [fhir.create(response(authored=f"2024-03-0{day}T10:00:00Z"))["id"] for day in (1, 2, 3)]
    status_path = kick_off(fhir, "$export?_type=QuestionnaireResponse")
    run_exports()
    first = manifest(fhir, status_path)
    pulled = exported(fhir, first)["QuestionnaireResponse"]
    assert sorted(r["id"] for r in pulled) == sorted(first_ids)

    changed = fhir.get(f"QuestionnaireResponse/{first_ids[0]}").get_json()
    fhir.put(f"QuestionnaireResponse/{first_ids[0]}", {**changed, "status": "amended"})
    added = fhir.create(response(authored="2024-03-04T10:00:00Z"))["id"]
    since = first["transactionTime"]
    path = kick_off(fhir, f"$export?_type=QuestionnaireResponse&_since={since}")
    run_exports()
    second = manifest(fhir, path)
    assert second["transactionTime"] > since
    increment = exported(fhir, second)["QuestionnaireResponse"] if second["output"] else []
    assert sorted(r["id"] for r in increment) == sorted([first_ids[0], added])
    versions = [(r["id"], r["meta"]["versionId"]) for r in pulled + increment]
    assert len(versions) == len(set(versions))  # no version pulled twice

    # A change stamped inside the safety margin before the export starts is left to the next pull.
    late = fhir.create(response(authored="2024-03-05T10:00:00Z"))["id"]
    since = second["transactionTime"]
    path = kick_off(fhir, f"$export?_type=QuestionnaireResponse&_since={since}")
    run_exports(export_since_margin_seconds=30)
    third = manifest(fhir, path)
    assert third["output"] == [] and third["transactionTime"] == since  # the window never runs backwards
    path = kick_off(fhir, f"$export?_type=QuestionnaireResponse&_since={third['transactionTime']}")
    run_exports()
    assert [r["id"] for r in exported(fhir, manifest(fhir, path))["QuestionnaireResponse"]] == [late]


def test_patient_and_group_level_exports_hold_compartments(fhir: Fhir, run_exports: Any) -> None:
    fhir.create(questionnaire())
    by_patient = {p: fhir.create(response(patient=p))["id"] for p in ("p1", "p2", "p3")}
    group = fhir.create(
        {"resourceType": "Group", "type": "person", "actual": True,
         "member": [{"entity": {"reference": "Patient/p1"}}, {"entity": {"reference": "Patient/p2"}}]}
    )  # fmt: skip
    assert fhir.get("Group?member=Patient/p2").get_json()["total"] == 1
    assert fhir.get("Group?member=p3").get_json()["total"] == 0
    patients = kick_off(fhir, "Patient/$export")
    members = kick_off(fhir, f"Group/{group['id']}/$export?_type=QuestionnaireResponse")
    run_exports()
    everyone = exported(fhir, manifest(fhir, patients))
    assert set(everyone) == {"QuestionnaireResponse"}  # Questionnaire and Provenance are in no compartment
    assert {r["id"] for r in everyone["QuestionnaireResponse"]} == set(by_patient.values())
    grouped = exported(fhir, manifest(fhir, members))["QuestionnaireResponse"]
    assert {r["id"] for r in grouped} == {by_patient["p1"], by_patient["p2"]}
    assert fhir.get("Group/missing/$export", headers=ASYNC).status_code == 404
    assert fhir.get("Patient/$export?_type=Questionnaire", headers=ASYNC).status_code == 400


def stored_chunks(app: Flask, job_id: str | None = None) -> list[ExportChunk]:
    """The export file chunks in the database (of one export, or of all)."""
    query = select(ExportChunk).order_by(ExportChunk.pk)
    if job_id is not None:
        query = query.join(ExportJob, ExportJob.pk == ExportChunk.job_pk).where(ExportJob.id == job_id)
    with app.web.services.db.read_session() as session:
        return list(session.scalars(query))


def test_cancel_removes_the_files_and_retention_expires_them(
    fhir: Fhir, run_exports: Any, settings: Settings, app: Flask
) -> None:
    fhir.create(questionnaire())
    fhir.create(response())
    path = kick_off(fhir)
    run_exports()
    body = manifest(fhir, path)
    job_id = path.rsplit("/", 1)[1]
    assert stored_chunks(app, job_id)
    cancelled = fhir.delete(path)
    assert cancelled.status_code == 202
    assert stored_chunks(app, job_id) == []
    assert fhir.get(path).status_code == 404
    assert fhir.get(body["output"][0]["url"].split("/fhir/", 1)[1]).status_code == 404
    queued = kick_off(fhir)
    assert fhir.delete(queued).status_code == 202
    run_exports()
    assert fhir.get(queued).status_code == 404
    expiring = kick_off(fhir)
    run_exports(export_retention_hours=0)
    assert stored_chunks(app, expiring.rsplit("/", 1)[1])
    exporter = Exporter(app.web.services, "test-worker")
    assert exporter.remove_expired() == 1
    assert fhir.get(expiring).status_code == 404
    assert stored_chunks(app) == []


def test_files_are_stored_in_chunks_and_streamed_back_whole(fhir: Fhir, run_exports: Any, app: Flask) -> None:
    fhir.create(questionnaire())
    ids = {fhir.create(response(authored=f"2024-05-{day:02d}T10:00:00Z"))["id"] for day in range(1, 9)}
    path = kick_off(fhir, "$export?_type=QuestionnaireResponse")
    run_exports(export_chunk_bytes=1024, export_chunk_rows=3)
    (output,) = manifest(fhir, path)["output"]
    chunks = stored_chunks(app, path.rsplit("/", 1)[1])
    assert len(chunks) > 2 and [chunk.seq for chunk in chunks] == list(range(len(chunks)))
    assert all(len(chunk.data) == 1024 for chunk in chunks[:-1]) and 0 < len(chunks[-1].data) <= 1024
    result = fhir.get(output["url"].split("/fhir/", 1)[1], headers={"Accept": "application/fhir+ndjson"})
    assert result.status_code == 200 and result.is_streamed
    assert result.mimetype == "application/fhir+ndjson"
    body = result.get_data()
    assert int(result.headers["Content-Length"]) == len(body) == sum(len(chunk.data) for chunk in chunks)
    assert body == b"".join(chunk.data for chunk in chunks) and body.endswith(b"\n")
    assert {orjson.loads(line)["id"] for line in body.splitlines()} == ids


def test_a_worker_that_lost_its_claim_stores_nothing_more(fhir: Fhir, app: Flask, settings: Settings) -> None:
    from service.exports.runner import Cancelled, NdjsonFiles
    from service.fhir.dates import utcnow
    from service.store import exports as store

    fhir.create(questionnaire())
    fhir.create(response())
    path = kick_off(fhir)
    with app.web.services.db.transaction() as session:
        job = store.claim_job(session, now=utcnow(), owner="slow-worker", lease_seconds=60, transaction_time=utcnow())
    assert job is not None
    output = NdjsonFiles("QuestionnaireResponse", settings.export_file_max_bytes, 1024)
    output.write(b'{"resourceType": "QuestionnaireResponse"}' * 40)
    exporter = Exporter(app.web.services, "slow-worker")
    assert fhir.delete(path).status_code == 202  # cancelled while the worker writes
    with pytest.raises(Cancelled):
        exporter._store(job, output, exported=1)
    assert stored_chunks(app) == []


def _status(result: TestResponse) -> int:
    result.close()
    return result.status_code


def test_only_the_client_that_started_an_export_reads_it(fhir: Fhir, keys: Keys, run_exports: Any) -> None:
    fhir.create(questionnaire())
    fhir.create(response())
    assert _status(fhir.get("$export", headers={"Accept": "application/fhir+json"})) == 400  # no respond-async
    patient = fhir.as_token(keys.token("patient/*.rs", patient="p1"))
    assert _status(patient.get("$export", headers=ASYNC)) == 403
    assert _status(patient.get("Patient/$export", headers=ASYNC)) == 403
    assert _status(fhir.get("$export?_type=AuditEvent", headers=ASYNC)) == 400
    assert _status(fhir.get("$export?_outputFormat=text/csv", headers=ASYNC)) == 400
    assert _status(fhir.get("$export?_typeFilter=QuestionnaireResponse%3Fstatus%3Dcompleted", headers=ASYNC)) == 400
    narrow = fhir.as_token(keys.token("system/QuestionnaireResponse.rs"))
    assert _status(narrow.get("$export?_type=Observation", headers=ASYNC)) == 403
    path = kick_off(narrow, "$export?_outputFormat=ndjson")
    run_exports()
    body = manifest(narrow, path)
    # All it may read: its responses, and the Questionnaires every client may read.
    assert [output["type"] for output in body["output"]] == ["QuestionnaireResponse", "Questionnaire"]
    file_path = body["output"][0]["url"].split("/fhir/", 1)[1]
    # Another client, or the same client acting for another user, is told nothing about the export: 404, as if
    # it did not exist.
    other = fhir.as_token(keys.token(client_id="another-client"))
    assert _status(other.get(path)) == 404
    assert _status(other.get(file_path)) == 404
    assert _status(other.delete(path)) == 404
    colleague = fhir.as_token(keys.token(sub="user-2"))
    assert _status(colleague.get(path)) == 404
    assert _status(colleague.get(file_path)) == 404
    assert _status(patient.get(file_path)) == 404
    unrelated = fhir.as_token(keys.token("system/Observation.rs"))  # same client, token no longer covers the type
    assert _status(unrelated.get(file_path)) == 403
    assert _status(narrow.get(file_path, headers={"Accept": "text/csv"})) == 406
    assert _status(narrow.get(file_path)) == 200
    assert _status(fhir.get("$export-status/no-such-export")) == 404


def test_a_stopping_worker_hands_its_export_back_and_a_dead_ones_is_taken_over(
    fhir: Fhir, app: Flask, settings: Settings, run_exports: Any
) -> None:
    from service.fhir.dates import utcnow
    from service.store import exports as store

    fhir.create(questionnaire())
    created = {fhir.create(response(authored=f"2024-06-0{day}T10:00:00Z"))["id"] for day in range(1, 4)}
    path = kick_off(fhir, "$export?_type=QuestionnaireResponse")
    db = app.web.services.db
    stopping = threading.Event()
    stopping.set()  # SIGTERM arrived: the export is released, not finished
    assert Exporter(app.web.services, "stopping-worker").run_next(stopping)
    time.sleep(settings.export_poll_seconds)
    assert fhir.get(path).headers["X-Progress"].startswith("queued")
    with db.transaction() as session:  # a worker claims it, writes part of a file, then dies without a word
        job = store.claim_job(session, now=utcnow(), owner="dead-worker", lease_seconds=0.2, transaction_time=utcnow())
        assert job is not None
        half = store.ChunkRecord("QuestionnaireResponse", 1, 0, b'{"resourceType": "QuestionnaireRes')
        store.add_chunks(session, job.pk, [half])
    run_exports()  # the lease has not lapsed yet: nothing to take
    time.sleep(settings.export_poll_seconds)
    assert fhir.get(path).status_code == 202
    file_path = f"$export-file/{job.id}/QuestionnaireResponse/1.ndjson"
    assert fhir.get(file_path).status_code == 404  # half-written: not served
    time.sleep(0.2)
    run_exports()  # taken over: started again from nothing
    (output,) = manifest(fhir, path)["output"]
    assert output["count"] == 3
    assert {line["id"] for line in download(fhir, output["url"])} == created
    assert half.data not in b"".join(chunk.data for chunk in stored_chunks(app))


def test_what_could_not_be_exported_is_reported_in_the_manifest(fhir: Fhir, run_exports: Any) -> None:
    group = fhir.create(
        {"resourceType": "Group", "type": "person", "actual": True, "member": [{"entity": {"reference": "Patient/p1"}}]}
    )
    path = kick_off(fhir, f"Group/{group['id']}/$export")
    assert fhir.delete(f"Group/{group['id']}").status_code == 200  # gone before the worker got to it
    run_exports()
    body = manifest(fhir, path)
    assert body["output"] == [] and len(body["error"]) == 1
    outcomes = download(fhir, body["error"][0]["url"])
    assert outcomes[0]["resourceType"] == "OperationOutcome"
    assert "no longer exists" in outcomes[0]["issue"][0]["details"]["text"]
