"""QuestionnaireResponse.status: the codes FHIR R4 allows, and which of them the service scores."""

from __future__ import annotations

RESPONSE_STATUSES = ("in-progress", "completed", "amended", "entered-in-error", "stopped")
# Answers that stand as given: scored, extracted into Observations, checked for safety items.
SCORED_STATUSES = ("completed", "amended")
