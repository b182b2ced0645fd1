"""Shared by the browser tests: Debian's Chromium driven by Playwright, axe-core, and where screenshots go.

Screenshots and axe reports are written to var/artifacts/screenshots (var/ is not cleaned by `make test`), so a
CI run keeps them as artefacts to look at.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from service.config import PROJECT_ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip
AXE = PROJECT_ROOT / "tests" / "node" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = PROJECT_ROOT / "var" / "artifacts" / "screenshots"


def axe_violations(page: Any, name: str) -> list[dict[str, Any]]:
    """Runs axe-core in the page; returns every violation, whatever its impact (also saved as an artifact)."""
    assert AXE.exists(), "axe-core is missing: run `make node-deps`"
    page.evaluate(AXE.read_text())
    violations: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
            .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))"""
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / f"{name}-axe.json").write_text(json.dumps(violations, indent=2))
    return violations
