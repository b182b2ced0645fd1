"""Outcomes for a team or the whole service: the built-in Measures, Jacobson and Truax's classification, reports."""
