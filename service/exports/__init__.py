"""Bulk Data export: what a client asks for and is allowed (requests), and the worker's run of it (runner)."""
