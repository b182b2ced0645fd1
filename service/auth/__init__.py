"""Access control: who may perform which FHIR interaction."""
