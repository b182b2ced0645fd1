"""HTTP surface: Flask blueprints for FHIR REST, operations and health."""
