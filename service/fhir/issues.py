"""The one shape every check in the service reports a problem in (rendered as OperationOutcome.issue)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["fatal", "error", "warning", "information"]


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found in a submitted resource.

    ``code`` is a FHIR ``issue-type`` code (``structure``, ``required``, ``value``, ``invariant``,
    ``code-invalid``, ``business-rule``, ``processing``, ``not-found``, ``informational`` ...).
    ``expression`` is a FHIRPath into the submitted resource, e.g.
    ``QuestionnaireResponse.item[2].answer[0]``; ``link_id`` names the item where there is one.
    """

    severity: Severity
    code: str
    text: str
    expression: str | None = None
    link_id: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity in ("fatal", "error")
