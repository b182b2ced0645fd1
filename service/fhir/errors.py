"""One exception hierarchy for every FHIR error, each rendering itself as an OperationOutcome."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from service.fhir.issues import Issue


class FhirError(Exception):
    """An error answered with an OperationOutcome and an HTTP status."""

    status = 400
    default_code = "invalid"

    def __init__(
        self,
        issues: str | Issue | Sequence[Issue],
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(issues, str):
            issues = [Issue("error", code or self.default_code, issues)]
        elif isinstance(issues, Issue):
            issues = [issues]
        self.issues: list[Issue] = list(issues)
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__("; ".join(issue.text for issue in self.issues))


class BadRequest(FhirError):
    status = 400


class Unauthorized(FhirError):
    status = 401
    default_code = "login"


class Forbidden(FhirError):
    status = 403
    default_code = "forbidden"


class NotFound(FhirError):
    status = 404
    default_code = "not-found"


class MethodNotAllowed(FhirError):
    status = 405
    default_code = "not-supported"


class NotAcceptable(FhirError):
    status = 406
    default_code = "not-supported"


class Conflict(FhirError):
    status = 409
    default_code = "conflict"


class Gone(FhirError):
    status = 410
    default_code = "deleted"


class PreconditionFailed(FhirError):
    status = 412
    default_code = "conflict"


class PayloadTooLarge(FhirError):
    status = 413
    default_code = "too-costly"


class UnsupportedMediaType(FhirError):
    status = 415
    default_code = "not-supported"


class Unprocessable(FhirError):
    status = 422
    default_code = "business-rule"


class TooManyRequests(FhirError):
    status = 429
    default_code = "throttled"


class ServiceUnavailable(FhirError):
    status = 503
    default_code = "transient"


class DatabaseUnavailable(ServiceUnavailable):
    """The database could not be reached, or stayed busy past its timeout: nothing was changed; a retry may work."""

    def __init__(self) -> None:
        super().__init__(
            "The database is unavailable or busy; nothing was changed. Retry shortly", headers={"Retry-After": "2"}
        )


def operation_outcome(issues: Sequence[Issue]) -> dict[str, Any]:
    """Render issues as an R4 OperationOutcome (``details.text``, ``expression``, linkId in ``diagnostics``)."""
    rendered: list[dict[str, Any]] = []
    for issue in issues:
        entry: dict[str, Any] = {
            "severity": issue.severity,
            "code": issue.code,
            "details": {"text": issue.text},
        }
        if issue.expression:
            entry["expression"] = [issue.expression]
        if issue.link_id is not None:
            entry["diagnostics"] = f"linkId: {issue.link_id}"
        rendered.append(entry)
    if not rendered:
        rendered.append({"severity": "information", "code": "informational", "details": {"text": "All OK"}})
    return {"resourceType": "OperationOutcome", "issue": rendered}
