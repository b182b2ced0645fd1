"""Recovery PROM service: FHIR R4 Questionnaires, validated and scored responses, Observations."""
