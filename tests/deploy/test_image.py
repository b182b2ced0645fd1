"""The container image, built without Docker: the Dockerfile's COPY and install steps replayed in a clean directory.

Each COPY copies what it names into a temporary root laid out as the image is; the install step (the RUN that
calls deploy/install.sh) makes a new virtualenv there from the package index, as `docker build` would. Then the
image's own commands run from that install: `proms --version`, the CMD, the HEALTHCHECK and the one-off init job
of compose.yaml. A step that breaks the build (a missing COPY, an install that fails, a file the service needs at
run time left out) fails here. The steps that need root inside an image (its user, the ownership of var/) are
not replayed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import yaml

from service.config import PROJECT_ROOT
from tests.conftest import Keys
from tests.deploy.dockerfile import BASE_PATH, env_pairs, exec_form, expand, instructions
from tests.e2e.processes import free_port, stop

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

VERSION = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
BUILT_IN = sorted(path.parent.name for path in (PROJECT_ROOT / "questionnaires").glob("*/questionnaire.json"))
INSTALL_SCRIPT = "deploy/install.sh"


@dataclass
class Image:
    """The image's file system under ``root``, and what its Dockerfile says about running it."""

    root: Path
    workdir: Path = Path()
    venv: Path = Path()
    env: dict[str, str] = field(default_factory=lambda: {"PATH": BASE_PATH})
    user: str = "root"
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)

    def local(self, path: str) -> Path:
        """Where a path of the image is under the temporary root (relative paths are from WORKDIR)."""
        return self.root / path.lstrip("/") if path.startswith("/") else self.workdir / path

    def host_env(self, **settings: str) -> dict[str, str]:
        """The container's environment for a process run here: its PATH mapped into the root, PROMS_* its own."""
        env = {name: value for name, value in os.environ.items() if not name.startswith("PROMS_")}
        for name in ("PYTHONPATH", "VIRTUAL_ENV"):  # the test run's own, which the image does not have
            env.pop(name, None)
        env.update({name: value for name, value in self.env.items() if name != "PATH"})
        env["PATH"] = os.pathsep.join(
            str(self.local(entry)) if self.local(entry).is_relative_to(self.venv) else entry
            for entry in self.env["PATH"].split(":")
        )
        env.update(settings)
        return env

    def command(self, argv: list[str], env: dict[str, str]) -> list[str]:
        """An exec-form command resolved on the image's PATH, as the container would: it must be the install's."""
        found = shutil.which(argv[0], path=env["PATH"])
        assert found is not None, f"{argv[0]} is not on the image's PATH {self.env['PATH']}"
        assert Path(found).is_relative_to(self.venv), f"{argv[0]} resolves to {found}, outside the image's install"
        return [found, *argv[1:]]


def _copy(image: Image, arguments: str) -> None:
    *sources, destination = shlex.split(arguments)
    assert not any(source.startswith("--") for source in sources), f"COPY {arguments}: flags are not replayed"
    target = image.local(destination)
    for source in sources:
        origin = PROJECT_ROOT / source
        assert origin.exists(), f"COPY {source}: no such file in the project"
        if origin.is_dir():  # Docker copies a directory's contents
            shutil.copytree(origin, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            into_directory = destination.endswith("/") or len(sources) > 1
            path = target / origin.name if into_directory else target
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, path)


def _install(image: Image, arguments: str) -> None:
    argv = shlex.split(arguments)
    assert argv[:2] == ["sh", INSTALL_SCRIPT] and len(argv) == 3, f"the install step is `sh {INSTALL_SCRIPT} VENV`"
    image.venv = image.local(argv[2])
    env = {**image.host_env(), "PATH": os.environ["PATH"], "PYTHON": sys.executable}
    result = subprocess.run(
        ["sh", INSTALL_SCRIPT, str(image.venv)], cwd=image.workdir, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"the install step failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    image = Image(tmp_path_factory.mktemp("image"))
    steps = instructions()
    bases = [step.arguments for step in steps if step.keyword == "FROM"]
    assert bases == [f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"], bases  # one stage, this Python
    for step in steps:
        if step.keyword == "WORKDIR":
            assert step.arguments.startswith("/"), "WORKDIR is absolute"
            image.workdir = image.local(step.arguments)
            image.workdir.mkdir(parents=True, exist_ok=True)
        elif step.keyword == "COPY":
            _copy(image, step.arguments)
        elif step.keyword == "RUN" and INSTALL_SCRIPT in step.arguments:
            _install(image, step.arguments)
        elif step.keyword == "ENV":
            image.env.update(env_pairs(step.arguments, image.env))
        elif step.keyword == "USER":
            image.user = expand(step.arguments, image.env)
        elif step.keyword == "CMD":
            image.cmd = exec_form(step.arguments)
        elif step.keyword == "HEALTHCHECK":
            _options, _, command = step.arguments.partition("CMD ")
            image.healthcheck = exec_form(command)
    assert image.venv != Path(), f"no RUN step calls {INSTALL_SCRIPT}"
    return image


@pytest.fixture
def jwt_settings(tmp_path: Path) -> dict[str, str]:
    """Production-style settings (the image listens on 0.0.0.0, where the service refuses to run without auth)."""
    keys = Keys(tmp_path)
    return {
        "PROMS_AUTH_ISSUER": "https://idp.proms.test",
        "PROMS_AUTH_JWKS_FILE": str(keys.jwks_file),
        "PROMS_DATABASE_URL": f"sqlite:///{tmp_path / 'image.sqlite3'}",
        "PROMS_LOG_LEVEL": "WARNING",
    }


def test_the_install_gives_the_proms_command_with_the_package_version(image: Image) -> None:
    env = image.host_env()
    result = subprocess.run(image.command(["proms", "--version"], env), env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"proms {VERSION}\n"


def test_the_installed_package_finds_its_files_in_the_workdir(
    image: Image, jwt_settings: dict[str, str], tmp_path: Path
) -> None:
    env = image.host_env(**jwt_settings)
    probe = (
        "import service.wsgi\n"  # what gunicorn imports: the whole app is built, with the image's settings
        "from service.config import PROJECT_ROOT, Settings\n"
        "settings = Settings.from_env()\n"
        "print(PROJECT_ROOT, settings.migrations_dir, settings.questionnaires_dir, settings.openapi_path, sep='\\n')\n"
    )
    python = str(image.venv / "bin" / "python")
    # From another directory, so that nothing is imported from the current one.
    result = subprocess.run([python, "-c", probe], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    root, migrations, library, openapi = (Path(line) for line in result.stdout.splitlines())
    assert root == image.workdir
    assert (migrations / "env.py").is_file() and list((migrations / "versions").glob("*.py"))
    assert sorted(path.parent.name for path in library.glob("*/questionnaire.json")) == BUILT_IN
    assert openapi.is_file()
    assert (root / "gunicorn.conf.py").is_file()  # `proms serve` runs gunicorn with it


def test_the_image_runs_as_a_user_and_its_command_only_serves(image: Image) -> None:
    assert image.user.split(":")[0] not in ("", "root", "0")
    assert image.cmd == ["proms", "serve"]  # migrating and loading are the one-off init job, never every start
    assert image.healthcheck == ["proms", "ready"]
    assert image.env["PROMS_HOST"] == "0.0.0.0"


@pytest.fixture
def served(image: Image, jwt_settings: dict[str, str]) -> Iterator[tuple[dict[str, str], str]]:
    """The image's CMD running from the install (on loopback and a free port here, rather than 0.0.0.0:8080)."""
    port = free_port()
    env = image.host_env(**jwt_settings, PROMS_HOST="127.0.0.1", PROMS_PORT=str(port), PROMS_WORKERS="1")
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        image.command(image.cmd, env), env=env, cwd=image.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        _wait_for_health(base, process)
        yield env, base
    finally:
        stop(process)
    assert process.returncode == 0


def _wait_for_health(base: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{base}/healthz", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the image's command did not start: {process.communicate(timeout=5)[1].decode()}")
        time.sleep(0.2)


def test_the_health_check_turns_healthy_once_the_init_job_has_run(
    image: Image, served: tuple[dict[str, str], str]
) -> None:
    env, base = served
    healthcheck = image.command(image.healthcheck, env)
    before = subprocess.run(healthcheck, env=env, capture_output=True, text=True, timeout=30)
    assert before.returncode == 1, before.stdout  # serving, but the database has no migrations yet: not ready
    assert "503" in before.stderr

    compose = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())
    init = subprocess.run(
        image.command(compose["services"]["init"]["command"], env), env=env, cwd=image.workdir, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    assert f"questionnaires: {len(BUILT_IN)} created, 0 updated, 0 unchanged, 0 failed" in init.stdout
    assert "outcome measures: 4 created, 0 updated, 0 unchanged, 0 failed" in init.stdout
    assert "terminology: 20 created, 0 updated, 0 unchanged, 0 failed" in init.stdout  # docs/terminology.md

    after = subprocess.run(healthcheck, env=env, capture_output=True, text=True, timeout=30)
    assert after.returncode == 0, after.stderr
    statement = requests.get(f"{base}/fhir/metadata", timeout=10).json()  # the CapabilityStatement needs no token
    assert statement["software"]["version"] == VERSION
