"""Every error leaves as an OperationOutcome: FHIR errors, HTTP errors and the unexpected alike."""

from __future__ import annotations

import logging

from flask import Flask, Response, g
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from service.api.http import fhir_response
from service.fhir.errors import FhirError, operation_outcome
from service.fhir.issues import Issue

log = logging.getLogger("proms.errors")

HTTP_ISSUE_CODES = {
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    413: "too-costly",
    415: "not-supported",
}


def _fhir_error(exc: FhirError) -> Response:
    return fhir_response(operation_outcome(exc.issues), exc.status, exc.headers)


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if isinstance(exc, RequestEntityTooLarge):
        text = "The request body is larger than this server accepts (PROMS_MAX_BODY_BYTES)"
    elif status == 404:
        text = "No such endpoint; the FHIR API is under /fhir (see /fhir/metadata)"
    elif status == 405:
        text = f"This endpoint does not support that method: {exc.description}"
    else:
        text = exc.description or exc.name
    issue = Issue("error", HTTP_ISSUE_CODES.get(status, "processing"), text)
    headers = {"Allow": ", ".join(exc.valid_methods)} if getattr(exc, "valid_methods", None) else {}  # type: ignore[attr-defined]
    return fhir_response(operation_outcome([issue]), status, headers)


def _unreadable_body(exc: Exception) -> Response:
    # gunicorn reads the body only as the app asks for it: a malformed chunked transfer coding (a chunk size
    # that is not hexadecimal, a chunk without its CRLF, a bad extension or trailer) surfaces here, from the
    # read, as gunicorn's parse error: the client's fault, not the server's. (A body cut short is an
    # OSError, which werkzeug already turns into a 400.)
    log.info("unreadable request body", extra={"error": type(exc).__name__})
    text = f"The request body could not be read: its chunked transfer coding is malformed ({exc})"
    return fhir_response(operation_outcome([Issue("error", "structure", text)]), 400)


def _unexpected(exc: Exception) -> Response:
    request_id = g.get("request_id", "unknown")
    log.exception("unhandled error", extra={"error": type(exc).__name__})
    issue = Issue(
        "fatal",
        "exception",
        f"The server could not complete the request because of an internal error (request id {request_id}); "
        "it has been logged",
    )
    return fhir_response(operation_outcome([issue]), 500)


def init_app(app: Flask) -> None:
    app.register_error_handler(FhirError, _fhir_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(ParseException, _unreadable_body)
    app.register_error_handler(Exception, _unexpected)
