"""The app's pure modules import no web framework, database, template engine or HTTP client."""

from __future__ import annotations

import ast
from pathlib import Path

import service.app_ui

FORBIDDEN = ("flask", "sqlalchemy", "jinja2", "requests", "authlib", "werkzeug", "service.store", "service.api")


def test_app_ui_modules_are_pure() -> None:
    package = Path(service.app_ui.__file__).parent
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(FORBIDDEN), f"{path.name} imports {name}"
