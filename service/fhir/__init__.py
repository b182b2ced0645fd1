"""FHIR wire format: parsing, serialisation, OperationOutcome, Bundles, search parameters."""
