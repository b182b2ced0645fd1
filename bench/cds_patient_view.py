"""How long a CDS Hooks patient-view takes for a person with 100 stored responses: python -m bench.cds_patient_view.

Starts its own app on a temporary SQLite file with JWT authentication on (a generated key pair), stores
100 scored responses for one person across PHQ-9, GAD-7 and K10 (and 300 for ten others), then times
patient-view calls through the WSGI app (no network) and prints p50/p95/p99 and the SQL statements per call.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench.harness import ISSUER, Signer
from service.app import create_app
from service.config import PROJECT_ROOT, Settings
from service.store.migrations import upgrade

BASE_URL = "http://bench.local/fhir"
SERVICE_URL = "http://bench.local/cds-services/recovery-proms"
INSTRUMENTS = ("phq-9", "gad-7", "k10")
SAFETY_FLAG = "https://recovery-proms.org/fhir/StructureDefinition/safety-flag"


def _questions(items: list[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for item in items:
        if item.get("answerOption") and not item.get("readOnly"):
            yield item
        yield from _questions(item.get("item", []))


def response_to(
    questionnaire: Mapping[str, Any], patient: str, authored: datetime, rng: random.Random
) -> dict[str, Any]:
    """A completed response with plausible answers (mostly low; safety items rarely above the first option)."""
    items = []
    for question in _questions(questionnaire["item"]):
        options = question["answerOption"]
        safety = any(e.get("url") == SAFETY_FLAG for e in question.get("extension", []))
        if safety:
            option = options[0] if rng.random() < 0.97 else options[1]
        else:
            option = rng.choices(options, weights=[8, 4, 2, 1, 1][: len(options)])[0]
        value = {k: v for k, v in option.items() if k.startswith("value")}
        items.append({"linkId": question["linkId"], "answer": [value]})
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{questionnaire['url']}|{questionnaire['version']}",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient}"},
        "authored": authored.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "item": items,
    }


def store_responses(client: Any, patient: str, count: int, rng: random.Random) -> None:
    definitions = [
        json.loads((PROJECT_ROOT / "questionnaires" / name / "questionnaire.json").read_text()) for name in INSTRUMENTS
    ]
    start = datetime.now(UTC) - timedelta(days=7 * count)
    for n in range(count):
        questionnaire = definitions[n % len(definitions)]
        authored = start + timedelta(days=7 * n, hours=rng.randint(0, 12))
        result = client.post("/fhir/QuestionnaireResponse", json=response_to(questionnaire, patient, authored, rng))
        if result.status_code != 201:
            raise SystemExit(f"storing a response failed: {result.status_code} {result.get_data(as_text=True)}")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--responses", type=int, default=100)
    arguments = parser.parse_args()
    rng = random.Random(20260303)
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        database = f"sqlite:///{directory / 'bench.sqlite3'}"
        upgrade(database, PROJECT_ROOT / "migrations")
        signer = Signer(directory)
        settings = Settings(
            database_url=database,
            base_url=BASE_URL,
            log_level="ERROR",
            auth_mode="jwt",
            auth_issuers=(ISSUER,),
            auth_jwks_file=signer.jwks_file,
            cds_issuers=(ISSUER,),
            cds_jwks_file=signer.jwks_file,
            load_questionnaires_on_start=True,
        )
        app = create_app(settings)
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {signer.token(BASE_URL, scope='system/*.cruds')}"
        print(f"storing {arguments.responses} responses for the person, 300 for ten others ...")
        store_responses(client, "bench-person", arguments.responses, rng)
        for other in range(10):
            store_responses(client, f"other-{other}", 30, rng)

        statements = 0

        def count(*_: Any) -> None:
            nonlocal statements
            statements += 1

        engine = app.web.services.db.engine
        event.listen(engine, "before_cursor_execute", count)
        tokens = [signer.token(SERVICE_URL, sub="bench-ehr") for _ in range(arguments.calls + 20)]
        durations: list[float] = []
        cards = 0
        for n, token in enumerate(tokens):
            body = {
                "hook": "patient-view",
                "hookInstance": str(uuid.uuid4()),
                "context": {"userId": "Practitioner/bench", "patientId": "bench-person"},
            }
            if n == 20:
                statements = 0  # the first 20 calls warm up caches and connections
            started = time.perf_counter()
            response = client.post(
                "/cds-services/recovery-proms", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise SystemExit(f"patient-view failed: {response.status_code} {response.get_data(as_text=True)}")
            if n >= 20:
                durations.append(elapsed)
                cards = len(response.get_json()["cards"])
        app.web.services.db.dispose()

    print(f"patient-view, {arguments.responses} responses across {len(INSTRUMENTS)} instruments, {cards} cards, "
          f"{arguments.calls} calls (JWT verified, AuditEvent written):")  # fmt: skip
    figures = {f"p{round(q * 100)}": percentile(durations, q) for q in (0.50, 0.95, 0.99)}
    figures.update(max=max(durations), mean=statistics.mean(durations))
    print("  " + "   ".join(f"{name} {value:.1f} ms" for name, value in figures.items()))
    print(f"  SQL statements per call: {statements / arguments.calls:.1f} (the audit write included)")


if __name__ == "__main__":
    main()
