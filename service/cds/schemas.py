"""CDS Hooks 2.0 JSON in and out: the hook and feedback requests, cards, discovery and errors (marshmallow)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_dump, post_load, validate, validates_schema

HOOK = "patient-view"
FHIR_ID = validate.Regexp(
    r"^[A-Za-z0-9\-\.]{1,64}$", error="must be a FHIR id (1-64 letters, digits, '-' or '.'), got {input!r}"
)
# patient-view's context.userId: who is looking at the chart, as a relative FHIR reference.
USER_REFERENCE = validate.Regexp(
    r"^(Practitioner|PractitionerRole|Patient|RelatedPerson)/[A-Za-z0-9\-\.]{1,64}$",
    error="must be a Practitioner, PractitionerRole, Patient or RelatedPerson reference such as "
    "Practitioner/123, got {input!r}",
)


@dataclass(frozen=True, slots=True)
class PatientViewRequest:
    hook_instance: uuid.UUID
    patient_id: str
    user_id: str
    fhir_server: str | None = None


@dataclass(frozen=True, slots=True)
class Feedback:
    card: uuid.UUID
    outcome: str  # accepted | overridden
    outcome_timestamp: datetime
    override_reason: Mapping[str, Any] | None = None  # {"reason": Coding, "user_comment": str}
    accepted_suggestions: tuple[str, ...] = ()


class _Lenient(Schema):
    """Unknown members are ignored: the specification lets clients add extensions anywhere."""

    class Meta:
        unknown = EXCLUDE


class _Compact(Schema):
    """Leaves out members with no value, as the specification's optional members are absent, not null."""

    @post_dump
    def _drop_empty(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {key: value for key, value in data.items() if value is not None}


# requests --------------------------------------------------------------------------------------------------


class PatientViewContextSchema(_Lenient):
    user_id = fields.String(required=True, data_key="userId", validate=USER_REFERENCE)
    patient_id = fields.String(required=True, data_key="patientId", validate=FHIR_ID)
    encounter_id = fields.String(data_key="encounterId", validate=FHIR_ID)


class FhirAuthorizationSchema(_Lenient):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True, validate=validate.Equal("Bearer", error="must be 'Bearer'"))
    expires_in = fields.Integer(required=True, strict=True)
    scope = fields.String(required=True)
    subject = fields.String(required=True)


class HookRequestSchema(_Lenient):
    """A patient-view call. The service reads its own store, so ``prefetch`` and ``fhirServer`` are optional."""

    hook = fields.String(
        required=True,
        validate=validate.Equal(HOOK, error=f"this service answers the {HOOK} hook, not {{input!r}}"),
    )
    hook_instance = fields.UUID(required=True, data_key="hookInstance")
    fhir_server = fields.Url(data_key="fhirServer", require_tld=False, schemes={"http", "https"})
    fhir_authorization = fields.Nested(FhirAuthorizationSchema, data_key="fhirAuthorization")
    context = fields.Nested(PatientViewContextSchema, required=True)
    prefetch = fields.Dict(keys=fields.String())

    @validates_schema
    def _authorization_needs_server(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "fhir_authorization" in data and "fhir_server" not in data:
            raise ValidationError("fhirServer is required when fhirAuthorization is given", "fhirServer")

    @post_load
    def _request(self, data: dict[str, Any], **kwargs: Any) -> PatientViewRequest:
        context = data["context"]
        return PatientViewRequest(
            data["hook_instance"], context["patient_id"], context["user_id"], data.get("fhir_server")
        )


class CodingSchema(_Lenient):
    system = fields.String()
    code = fields.String(required=True)
    display = fields.String()


class OverrideReasonSchema(_Lenient):
    reason = fields.Nested(CodingSchema)
    user_comment = fields.String(data_key="userComment", validate=validate.Length(max=2000))


class AcceptedSuggestionSchema(_Lenient):
    id = fields.String(required=True)


class FeedbackEntrySchema(_Lenient):
    card = fields.UUID(required=True)
    outcome = fields.String(required=True, validate=validate.OneOf(("accepted", "overridden")))
    accepted_suggestions = fields.List(fields.Nested(AcceptedSuggestionSchema), data_key="acceptedSuggestions")
    override_reason = fields.Nested(OverrideReasonSchema, data_key="overrideReason")
    outcome_timestamp = fields.AwareDateTime(required=True, data_key="outcomeTimestamp")

    @validates_schema
    def _outcome_matches(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "override_reason" in data and data.get("outcome") != "overridden":
            raise ValidationError("overrideReason is only for outcome 'overridden'", "overrideReason")
        if "accepted_suggestions" in data and data.get("outcome") != "accepted":
            raise ValidationError("acceptedSuggestions is only for outcome 'accepted'", "acceptedSuggestions")

    @post_load
    def _feedback(self, data: dict[str, Any], **kwargs: Any) -> Feedback:
        return Feedback(
            card=data["card"],
            outcome=data["outcome"],
            outcome_timestamp=data["outcome_timestamp"],
            override_reason=data.get("override_reason"),
            accepted_suggestions=tuple(s["id"] for s in data.get("accepted_suggestions", [])),
        )


class FeedbackRequestSchema(_Lenient):
    feedback = fields.List(
        fields.Nested(FeedbackEntrySchema),
        required=True,
        validate=validate.Length(min=1, max=100, error="must hold between {min} and {max} entries"),
    )


# responses -------------------------------------------------------------------------------------------------


class SourceSchema(_Compact):
    label = fields.String()
    url = fields.String()


class LinkSchema(_Compact):
    label = fields.String()
    url = fields.String()
    type = fields.String()
    app_context = fields.String(data_key="appContext")


class CardSchema(_Compact):
    uuid = fields.String()
    summary = fields.String()
    indicator = fields.String()
    detail = fields.String()
    source = fields.Nested(SourceSchema)
    links = fields.List(fields.Nested(LinkSchema))


class HookResponseSchema(Schema):
    cards = fields.List(fields.Nested(CardSchema))


class ServiceSchema(_Compact):
    hook = fields.String()
    id = fields.String()
    title = fields.String()
    description = fields.String()
    prefetch = fields.Dict(keys=fields.String(), values=fields.String())
    usage_requirements = fields.String(data_key="usageRequirements")


class DiscoverySchema(Schema):
    services = fields.List(fields.Nested(ServiceSchema))


class FeedbackResultSchema(Schema):
    received = fields.Integer()
    flags_reviewed = fields.Integer(data_key="flagsReviewed")


class ErrorDetailSchema(_Compact):
    field = fields.String()
    message = fields.String()


class ErrorSchema(_Compact):
    """Every CDS endpoint error: ``error`` (a stable code), ``message`` (for people), ``details`` per member."""

    error = fields.String()
    message = fields.String()
    details = fields.List(fields.Nested(ErrorDetailSchema))


def flatten_messages(messages: Any, path: str = "") -> list[tuple[str, str]]:
    """marshmallow's nested error messages as (dotted member path, message) pairs: 'context.patientId'."""
    if isinstance(messages, Mapping):
        found: list[tuple[str, str]] = []
        for key, value in messages.items():
            if key == "_schema":
                child = path
            elif isinstance(key, int):
                child = f"{path}[{key}]"
            else:
                child = f"{path}.{key}" if path else str(key)
            found.extend(flatten_messages(value, child))
        return found
    if isinstance(messages, list | tuple):
        return [pair for message in messages for pair in flatten_messages(message, path)]
    return [(path, str(messages))]
