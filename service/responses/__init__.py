"""QuestionnaireResponses: submitting, amending and deleting them (submit), what a submission must be (checks),
what a stored response derives (derived), and the SDC operations $validate and $extract (operations)."""
