"""The integration guide and the examples, run as an integrator would against a live service with the demo data.

docs/integration.md is run block by block: every ```bash block, in order, in one bash process (variables carry
from block to block), and a ```text block right after one is what it must print. There ``...`` on a line of its
own stands for any number of lines and within a line for any text; ``<name>`` stands for a value that changes from
run to run (an id, a port), the same value wherever the same name appears. Trailing spaces do not count, and the
service's address is written as ``make demo`` serves it (http://127.0.0.1:8080). Other blocks (```sh) are shown,
not run.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from service.config import PROJECT_ROOT
from tests.e2e.processes import PROMS, free_port, service_env, stop, wait_until_ready

pytestmark = pytest.mark.e2e

GUIDE = PROJECT_ROOT / "docs" / "integration.md"
EXAMPLES = PROJECT_ROOT / "examples"
DEMO_ADDRESS = "http://127.0.0.1:8080"  # where `make demo` serves, as the guide shows it

FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
PLACEHOLDER = re.compile(r"<([a-z][a-z0-9-]*)>|\.\.\.")
MARKER = "@@guide-block-{}@@"


@dataclass(frozen=True)
class Step:
    line: int  # where the command block starts in the guide
    commands: str
    expected: str | None  # the output the guide shows, if it shows one


def guide_steps(markdown: str) -> list[Step]:
    steps: list[Step] = []
    previous_language, previous_end = "", 0
    for match in FENCE.finditer(markdown):
        language, body = match.group(1), match.group(2)
        line = markdown.count("\n", 0, match.start()) + 1
        right_after = not markdown[previous_end : match.start()].strip()
        if language == "text" and previous_language == "bash" and right_after:
            steps[-1] = Step(steps[-1].line, steps[-1].commands, body)
        elif language == "bash":
            steps.append(Step(line, body, None))
        previous_language, previous_end = language, match.end()
    return steps


def _line_pattern(expected: str, bindings: dict[str, str]) -> tuple[re.Pattern[str], list[str]]:
    parts, names, position = [], [], 0
    for match in PLACEHOLDER.finditer(expected):
        parts.append(re.escape(expected[position : match.start()]))
        name = match.group(1)
        if name is None:
            parts.append(".*?")
        elif name in bindings:
            parts.append(re.escape(bindings[name]))
        elif name in names:
            parts.append(f"(?P={_group(name)})")
        else:
            parts.append(f"(?P<{_group(name)}>[^\\s\"',]+?)")
            names.append(name)
        position = match.end()
    parts.append(re.escape(expected[position:]))
    return re.compile("".join(parts)), names


def _group(name: str) -> str:
    return "p_" + name.replace("-", "_")


def match_output(expected: str, actual: str, bindings: dict[str, str]) -> dict[str, str] | None:
    """The placeholders' values if ``actual`` is what ``expected`` shows (bindings of earlier blocks hold)."""
    wanted = [line.rstrip() for line in expected.rstrip("\n").split("\n")]
    lines = [line.rstrip() for line in actual.rstrip("\n").split("\n")] if actual.strip() else []

    def match(i: int, j: int, bound: dict[str, str]) -> dict[str, str] | None:
        if i == len(wanted):
            return bound if j == len(lines) else None
        if wanted[i] == "...":
            for k in range(j, len(lines) + 1):
                found = match(i + 1, k, bound)
                if found is not None:
                    return found
            return None
        if j == len(lines):
            return None
        pattern, names = _line_pattern(wanted[i], bound)
        line_match = pattern.fullmatch(lines[j])
        if line_match is None:
            return None
        return match(i + 1, j + 1, {**bound, **{name: line_match.group(_group(name)) for name in names}})

    return match(0, 0, dict(bindings))


@dataclass(frozen=True)
class GuideRun:
    returncode: int
    outputs: list[str]  # what each step printed (as far as the run got)
    stderr: str


def run_guide(steps: list[Step], *, cwd: Path, env: dict[str, str], timeout: float) -> GuideRun:
    """Run every step in one ``bash -euo pipefail``; the output is split per step at markers printed between them."""
    script = "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"  # a command the guide leaves running stops with it
    script += "".join(f"printf '\\n{MARKER.format(n)}\\n'\n{step.commands}\n" for n, step in enumerate(steps))
    process = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: background commands it leaves are stopped with it
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        if process.poll() is None:
            process.kill()
            process.communicate()
    pieces = re.split(r"\n@@guide-block-\d+@@\n", "\n" + stdout)
    return GuideRun(process.returncode, pieces[1:], stderr)


# the live service ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service as `make demo` runs it (server and worker, no authentication, the demo people), on a port of its
    own; its root URL."""
    directory = tmp_path_factory.mktemp("demo")
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    env = service_env(
        port,
        f"sqlite:///{directory / 'demo.sqlite3'}",
        PROMS_SCHEDULE="*=84",  # as make demo
        # The guide exports right after loading: with no margin, what was written a moment ago is in the export.
        PROMS_EXPORT_SINCE_MARGIN_SECONDS="0",
        PROMS_WORKER_POLL_SECONDS="0.2",
    )
    for command in (["init"], ["demo", "load"]):  # as make demo
        done = subprocess.run([PROMS, *command], env=env, cwd=directory, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"proms {' '.join(command)}: {done.stderr}"
    log_path = directory / "processes.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen([PROMS, "serve"], env=env, cwd=directory, stdout=log, stderr=log)
    worker: subprocess.Popen[bytes] | None = None
    try:
        wait_until_ready(root, server, log_path.read_text)
        with log_path.open("ab") as log:
            worker = subprocess.Popen([PROMS, "worker"], env=env, cwd=directory, stdout=log, stderr=log)
        yield root
    finally:
        for process in (worker, server):
            if process is not None:
                stop(process)


def example_env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PROMS_TOKEN"}
    return {**env, "TMPDIR": str(tmp_path)}


def shell_tools() -> None:
    """What the guide and the curl walkthrough run on: fail, saying so, rather than skip."""
    missing = [tool for tool in ("bash", "curl", "python3") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"the guide's commands need {', '.join(missing)} on PATH (apt-get install {' '.join(missing)})")


def run_example(command: list[str], tmp_path: Path, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=example_env(tmp_path), capture_output=True, text=True, timeout=180)


# the examples ---------------------------------------------------------------------------------------------------


def test_the_curl_walkthrough_runs_green(demo: str, tmp_path: Path) -> None:
    shell_tools()
    done = run_example(["bash", str(EXAMPLES / "curl" / "walkthrough.sh"), f"{demo}/fhir"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(r"201 Created: QuestionnaireResponse/(\S+) for Patient/walkthrough-\S+, PHQ-9 total 10", out)
    created = re.search(r"201 Created: QuestionnaireResponse/(\S+) ", out)
    assert created is not None and f"200 OK: the same QuestionnaireResponse/{created.group(1)};" in out
    assert "PHQ-9 total score (0–27): 10 (Moderate), final" in out
    assert "PHQ-9 total score (0–27): 12 (Moderate), amended; amending version 1 again: 412" in out
    assert "both Observations entered-in-error" in out
    assert re.search(
        r"Patient/demo-01 \(.+\):\n(  .+\n)*  \S+  PHQ-9 total score \(0–27\): \d+  \[[^]]*Reliably improved\]", out
    )
    assert re.search(r"PHQ-9 total score \(0–27\): \d+  \[Severe; Reliably deteriorated\]", out)
    assert "PHQ-9 item 9 answered above 'Not at all'" in out
    assert re.search(r"info: Due: .*QPR-15", out)
    assert out.rstrip().endswith(f"All checks passed against {demo}/fhir")


def test_the_curl_walkthrough_stops_at_the_first_surprise(demo: str, tmp_path: Path) -> None:
    shell_tools()
    # A FHIR base that is not one: the first check (the CapabilityStatement) fails, saying what it expected.
    done = run_example(["bash", str(EXAMPLES / "curl" / "walkthrough.sh"), f"{demo}/not-fhir"], tmp_path)
    assert done.returncode != 0
    assert "FAILED: metadata: HTTP 404, expected 200" in done.stderr
    assert "201 Created" not in done.stdout


def test_the_python_client_runs_green(demo: str, tmp_path: Path) -> None:
    done = run_example([sys.executable, str(EXAMPLES / "python" / "fhirpy_client.py"), f"{demo}/fhir"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert (
        lines[0] == "11 active questionnaires; submitting to https://recovery-proms.org/fhir/Questionnaire/phq-9|1.2.0"
    )
    stored = re.fullmatch(r"stored QuestionnaireResponse/(\S+) for Patient/(fhirpy-\w+): PHQ-9 total 10", lines[1])
    assert stored is not None, lines[1]
    assert lines[2] == f"retried: the same QuestionnaireResponse/{stored.group(1)}, stored once"
    assert lines[3] == f"Patient/{stored.group(2)}: 2026-11-20  PHQ-9 total score (0–27): 10 (Moderate)"
    assert re.fullmatch(r"Patient/demo-01, PHQ-9, newest first \(\d+ scores\):", lines[4])
    assert re.fullmatch(r"  \S+  PHQ-9 total score \(0–27\): \d+ \([^)]*Reliably improved\)", lines[5])
    assert len(lines) > 6


def node() -> str:
    """Node.js with the JavaScript example's packages: in CI `make test` installs them (make node-deps)."""
    executable = shutil.which("node")
    if executable is None:
        pytest.fail("node is not installed: the JavaScript example (examples/javascript) needs Node.js 18 or later")
    if not (EXAMPLES / "javascript" / "node_modules" / "fhirclient").is_dir():
        pytest.fail("examples/javascript/node_modules is missing: run `make node-deps` (npm ci in examples/javascript)")
    return executable


def test_the_javascript_client_runs_green(demo: str, tmp_path: Path) -> None:
    done = run_example([node(), "client.js", f"{demo}/fhir"], tmp_path, cwd=EXAMPLES / "javascript")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert (
        lines[0] == "11 active questionnaires; submitting to https://recovery-proms.org/fhir/Questionnaire/phq-9|1.2.0"
    )
    stored = re.fullmatch(r"stored QuestionnaireResponse/(\S+) for Patient/(fhirclient-\w+): PHQ-9 total 10", lines[1])
    assert stored is not None, lines[1]
    assert lines[2] == f"retried: the same QuestionnaireResponse/{stored.group(1)}, stored once"
    assert lines[3] == f"Patient/{stored.group(2)}: 2026-11-20  PHQ-9 total score (0–27): 10 (Moderate)"
    assert re.fullmatch(r"Patient/demo-01, PHQ-9, newest first \(\d+ scores\):", lines[4])
    assert re.fullmatch(r"  \S+  PHQ-9 total score \(0–27\): \d+ \([^)]*Reliably improved\)", lines[5])


# the guide ------------------------------------------------------------------------------------------------------


def test_every_command_of_the_integration_guide_prints_what_the_guide_shows(demo: str, tmp_path: Path) -> None:
    shell_tools()
    steps = guide_steps(GUIDE.read_text(encoding="utf-8"))
    env = {**example_env(tmp_path), "FHIR": f"{demo}/fhir"}
    run = run_guide(steps, cwd=PROJECT_ROOT, env=env, timeout=240)
    bindings: dict[str, str] = {}
    for step, printed in zip(steps, run.outputs, strict=False):
        if step.expected is None:
            continue
        actual = printed.replace("\r", "").replace(demo, DEMO_ADDRESS)
        found = match_output(step.expected, actual, bindings)
        assert found is not None, (
            f"docs/integration.md line {step.line}: the commands printed\n{actual}\nwhere the guide shows\n"
            f"{step.expected}\n(stderr: {run.stderr})"
        )
        bindings = found
    assert run.returncode == 0, f"the guide's commands stopped at block {len(run.outputs)}: {run.stderr}"
    assert len(run.outputs) == len(steps)


def test_the_guide_runs_every_integration_point() -> None:
    steps = guide_steps(GUIDE.read_text(encoding="utf-8"))
    commands = "\n".join(step.commands for step in steps)
    for needed in ("/metadata", "/cds-services", "patient=", "If-Match", "entered-in-error", "_revinclude=",
                   "$export", "/Subscription", "smart-configuration"):  # fmt: skip
        assert needed in commands, f"no command of the guide uses {needed}"
    assert sum(step.expected is not None for step in steps) >= 20


def test_expected_output_placeholders_and_ellipses() -> None:
    shown = 'HTTP/1.1 201 CREATED\n...\nLocation: .../QuestionnaireResponse/<id>/_history/1\n{"id":"<id>",...}'
    printed = 'HTTP/1.1 201 CREATED\nServer: x\nDate: y\nLocation: http://h/QuestionnaireResponse/abc-1/_history/1\n{"id":"abc-1","meta":{}}'
    assert match_output(shown, printed, {}) == {"id": "abc-1"}
    assert match_output(shown, printed.replace('"id":"abc-1"', '"id":"other"'), {}) is None  # one name, one value
    assert match_output(shown, printed, {"id": "zzz"}) is None  # bound by an earlier block
    assert match_output("a\n...\nb", "a\nb\n", {}) == {}
    assert match_output("a\nb", "a\nb\nc", {}) is None  # nothing printed beyond what is shown, unless "..."
    assert match_output("<n>  ", "7", {}) == {"n": "7"}  # trailing spaces do not count


# the download step with the server and the worker in separate working directories ------------------------------


def test_export_files_download_whatever_the_worker_s_working_directory(tmp_path: Path) -> None:
    """The guide's download step with the worker started elsewhere than the server: the files are in the database,
    so nothing depends on where (or on which machine) the worker wrote them."""
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    env = service_env(
        port,
        f"sqlite:///{tmp_path / 'proms.sqlite3'}",
        PROMS_EXPORT_SINCE_MARGIN_SECONDS="0",  # the questionnaires were stored a moment ago
        PROMS_WORKER_POLL_SECONDS="0.2",
    )
    server_dir, worker_dir = tmp_path / "server", tmp_path / "worker"
    server_dir.mkdir()
    worker_dir.mkdir()
    for command in (["db", "upgrade"], ["questionnaires", "load"]):
        subprocess.run([PROMS, *command], env=env, cwd=server_dir, check=True, capture_output=True, timeout=120)
    log_path = tmp_path / "processes.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen([PROMS, "serve"], env=env, cwd=server_dir, stdout=log, stderr=log)
        worker = subprocess.Popen([PROMS, "worker"], env=env, cwd=worker_dir, stdout=log, stderr=log)
    try:
        wait_until_ready(root, server, log_path.read_text)
        kick_off = requests.get(
            f"{root}/fhir/$export?_type=Questionnaire", headers={"Prefer": "respond-async"}, timeout=10
        )
        assert kick_off.status_code == 202, kick_off.text
        deadline = time.monotonic() + 60
        while (status := requests.get(kick_off.headers["Content-Location"], timeout=10)).status_code != 200:
            assert time.monotonic() < deadline, status.text
            time.sleep(2.1)
        url = status.json()["output"][0]["url"]
        download = requests.get(url, timeout=10)
        assert download.status_code == 200, download.text
        assert len(download.text.splitlines()) == 11
    finally:
        stop(worker)
        stop(server)
