"""The clinician app's pure parts: score histories, charts, profiles, schedules, forms, patient mapping (no I/O)."""
