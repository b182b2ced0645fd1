"""The Node.js side of the test suite (fhirpath.js, LHC-Forms, axe-core): one way to find node and install it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).parent / "node"


def node_with(*packages: str) -> str:
    """The node executable, with tests/node's locked packages installed (npm ci) if any is missing.

    Without node a developer's run skips these tests; in CI (CI set) that is a failure, never a silent skip.
    """
    executable = shutil.which("node")
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("node is required in CI for the cross-checks against fhirpath.js and LHC-Forms")
        pytest.skip("node is not installed")
    if not all((NODE_DIR / "node_modules" / package).is_dir() for package in packages):
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR, check=True, timeout=300
        )
    return executable
