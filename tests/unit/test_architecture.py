"""The import contracts (pyproject.toml, [tool.importlinter]) bite: a forbidden import planted in a copy of the
package makes ``lint-imports`` fail, naming the contract it breaks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from service.config import PROJECT_ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
LAYERS = "Layers: entry points"
PURE = "The pure core never imports"
STORE = "Only the use cases, the service container and the audit sink touch the store"
FLASK = "Only the HTTP layer and the app that wires it import Flask"
SPANNING = "Every module of a package that spans layers has its place"


def lint_copy(tmp_path: Path, plant: tuple[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on a copy of the package, with ``plant`` = (file, line) appended first."""
    shutil.copytree(PROJECT_ROOT / "service", tmp_path / "service", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    if plant is not None:
        target = tmp_path / plant[0]
        text = target.read_text() if target.exists() else '"""A module planted by the test."""\n'
        target.write_text(text + plant[1] + "\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


def broken_contracts(output: str) -> set[str]:
    """The contracts (by the start of their names) reported BROKEN; a long name wraps onto a second line."""
    flat = re.sub(r"\s*\n\s*", " ", output)
    broken = set()
    for name in (LAYERS, PURE, STORE, FLASK, SPANNING):
        verdict = re.compile(r" (KEPT|BROKEN)\b").search(flat, flat.index(name))
        if verdict is not None and verdict.group(1) == "BROKEN":
            broken.add(name)
    return broken


def test_the_package_as_it_is_keeps_every_contract(tmp_path: Path) -> None:
    result = lint_copy(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout
    assert result.stdout.count("KEPT") == 5


@pytest.mark.parametrize(
    ("plant", "broken"),
    [
        # The worker shell reaching into the HTTP layer.
        (("service/jobs/__init__.py", "import service.api"), {LAYERS}),
        # The pure scoring core importing a use case that uses the store.
        (("service/scoring/__init__.py", "import service.responses.submit"), {LAYERS, PURE, SPANNING}),
        # The HTTP layer opening sessions itself.
        (("service/api/fhir_rest.py", "from service.store import db"), {STORE}),
        # The pure validation core importing the web framework.
        (("service/validation/tree.py", "import flask"), {PURE, FLASK}),
        # The store climbing back up to a use case.
        (("service/store/models.py", "import service.resources"), {LAYERS}),
        # A new module nobody placed in a layer.
        (("service/newthing.py", "import service.fhir"), {LAYERS}),
        # A new module of the subscriptions package, unplaced.
        (("service/subscriptions/filters.py", "import service.fhir"), {SPANNING}),
    ],
)
def test_a_planted_forbidden_import_breaks_its_contract(
    tmp_path: Path, plant: tuple[str, str], broken: set[str]
) -> None:
    result = lint_copy(tmp_path, plant)
    assert result.returncode != 0
    assert broken_contracts(result.stdout) == broken, result.stdout


def test_services_are_never_looked_up_by_string_key() -> None:
    """One typed composition root: no module fetches a service from Flask's extensions by name."""
    found = [
        f"{path.relative_to(PROJECT_ROOT)}:{number}"
        for path in sorted((PROJECT_ROOT / "service").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"extensions\[", line)
    ]
    assert found == []
