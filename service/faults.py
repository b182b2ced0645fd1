"""Fault injection for atomicity tests: named points inside a write where the process can be made to die.

Configured by PROMS_FAULTS (``point=probability,...``, e.g. ``after-observations=0.1``) and honoured only
when the service listens on loopback, so a production deployment cannot enable it by accident.
"""

from __future__ import annotations

import os
import random

POINTS = ("after-response", "after-observations", "before-commit")


class FaultPoints:
    def __init__(self, spec: str = "", *, enabled: bool = False) -> None:
        self._chances: dict[str, float] = {}
        if not enabled:
            return
        for part in filter(None, (p.strip() for p in spec.split(","))):
            point, _, chance = part.partition("=")
            if point not in POINTS:
                raise ValueError(f"unknown fault point {point!r}; known: {', '.join(POINTS)}")
            self._chances[point] = float(chance or 1)
        self._random = random.Random(os.getpid())

    def reached(self, point: str) -> None:
        chance = self._chances.get(point)
        if chance and self._random.random() < chance:
            # As abrupt as SIGKILL: no cleanup, no rollback by Python; the database must make the write atomic.
            os._exit(137)
