"""The baselines every HTTP figure is compared with, served by the same gunicorn settings as the service.

(a) ``constant``: a minimal Flask endpoint returning a constant JSON body: the ceiling of Flask + gunicorn.
(b) ``parse_insert``: a Flask endpoint that parses the posted QuestionnaireResponse with fhir.resources (R4B)
    and inserts it as one row (SQLite in WAL mode, as the service runs it, or PostgreSQL), committed: the
    least a FHIR service on this stack can do per write.

Run as ``gunicorn bench.baselines:app`` with ``BENCH_BASELINE_DB`` set to a SQLAlchemy-style URL.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from typing import Any

from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from flask import Flask, Response, request

CONSTANT = b'{"resourceType":"Parameters","parameter":[{"name":"status","valueString":"ok"}]}'
app = Flask(__name__)
_local = threading.local()
_url = os.environ.get("BENCH_BASELINE_DB", "")


def _connection() -> Any:
    connection = getattr(_local, "connection", None)
    if connection is not None:
        return connection
    if _url.startswith("sqlite"):
        connection = sqlite3.connect(_url.removeprefix("sqlite:///"), timeout=10, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=10000")
    else:
        import psycopg

        connection = psycopg.connect(_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    connection.execute("CREATE TABLE IF NOT EXISTS baseline_row (id VARCHAR(64) PRIMARY KEY, resource_json TEXT)")
    _local.connection = connection
    return connection


@app.get("/constant")
def constant() -> Response:
    return Response(CONSTANT, mimetype="application/fhir+json")


@app.post("/parse-insert")
def parse_insert() -> Response:
    body = request.get_data()
    QuestionnaireResponse.model_validate_json(body)
    resource_id = str(uuid.uuid4())
    placeholder = "?" if _url.startswith("sqlite") else "%s"
    _connection().execute(
        f"INSERT INTO baseline_row (id, resource_json) VALUES ({placeholder}, {placeholder})",
        (resource_id, body.decode()),
    )
    return Response(b'{"id":"' + resource_id.encode() + b'"}', status=201, mimetype="application/fhir+json")
