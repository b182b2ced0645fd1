"""Unit tests of the scoring engine (service.scoring)."""
