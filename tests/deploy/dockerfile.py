"""Reading the project's Dockerfile as Docker does: one instruction per logical line, exec-form JSON, ENV pairs."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from service.config import PROJECT_ROOT

DOCKERFILE = PROJECT_ROOT / "Dockerfile"
# PATH in the official python images, before any ENV of ours.
BASE_PATH = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    """Comments dropped, backslash continuations joined (comment lines inside them skipped, as Docker does)."""
    found: list[Instruction] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        found.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return found


def exec_form(arguments: str) -> list[str]:
    """CMD/HEALTHCHECK in exec form (a JSON array): run without a shell, so signals reach the process."""
    command = json.loads(arguments)
    assert isinstance(command, list) and all(isinstance(part, str) for part in command), arguments
    return command


def expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda match: env.get(match.group(1) or match.group(2), ""), value)


def env_pairs(arguments: str, env: dict[str, str]) -> dict[str, str]:
    """ENV name=value ... (each value expanded against the image's environment so far)."""
    pairs: dict[str, str] = {}
    for token in shlex.split(arguments):
        name, equals, value = token.partition("=")
        assert equals, f"ENV in the legacy 'ENV name value' form: {arguments}"
        pairs[name] = expand(value, {**env, **pairs})
    return pairs


def image_env(path: Path = DOCKERFILE) -> dict[str, str]:
    """The environment a container of the image starts with."""
    env = {"PATH": BASE_PATH}
    for step in instructions(path):
        if step.keyword == "ENV":
            env.update(env_pairs(step.arguments, env))
    return env
