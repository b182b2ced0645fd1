"""A FHIR client in Python (fhirpy): find the PHQ-9, submit a response, read the scores back, newest first.

    python examples/python/fhirpy_client.py [FHIR_BASE]      # default http://127.0.0.1:8080/fhir (make demo)

Set PROMS_TOKEN to send a bearer token (a service running with PROMS_AUTH=jwt needs one). Exits non-zero, saying
why, when the server does not answer as expected.
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any

from fhirpy import SyncFHIRClient

PHQ9 = "https://recovery-proms.org/fhir/Questionnaire/phq-9"
PHQ9_TOTAL = "http://loinc.org|44261-6"
RESPONSE_IDS = "https://ehr.example.org/prom-response"  # your system for your own ids of responses
LOINC = "http://loinc.org"
# PHQ-9 items 1-9 and the options chosen: 3 x "More than half the days" (2), 4 x "Several days" (1),
# 2 x "Not at all" (0): a total of 10.
ANSWERS = {
    "/44250-9": "LA6570-1", "/44255-8": "LA6570-1", "/44259-0": "LA6569-3", "/44254-1": "LA6570-1",
    "/44251-7": "LA6569-3", "/44258-2": "LA6569-3", "/44252-5": "LA6569-3", "/44253-3": "LA6568-5",
    "/44260-8": "LA6568-5",
}  # fmt: skip


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"unexpected: {message}")


def phq9_response(patient: str, questionnaire: str, response_id: str) -> dict[str, Any]:
    return {
        "identifier": {"system": RESPONSE_IDS, "value": response_id},
        "questionnaire": questionnaire,
        "status": "completed",
        "subject": {"reference": f"Patient/{patient}"},
        "authored": "2026-11-20T10:00:00Z",
        "item": [
            {"linkId": link_id, "answer": [{"valueCoding": {"system": LOINC, "code": code}}]}
            for link_id, code in ANSWERS.items()
        ],
    }


def score_line(observation: Any) -> str:
    """Date, score and value, with its band and any reliable change: "2026-11-20  PHQ-9 ...: 10 (Moderate)"."""
    meaning = "; ".join(entry["text"] for entry in observation.get("interpretation", []) if "text" in entry)
    when, what = observation["effectiveDateTime"][:10], observation["code"]["text"]
    return f"{when}  {what}: {observation['valueInteger']} ({meaning or 'no band'})"


def main(base: str) -> None:
    token = os.environ.get("PROMS_TOKEN")
    client = SyncFHIRClient(base, authorization=f"Bearer {token}" if token else None)

    # 1. The library: every active Questionnaire, following the Bundle's next links.
    questionnaires = client.resources("Questionnaire").search(status="active").limit(50).fetch_all()
    phq9 = next((q for q in questionnaires if q["url"] == PHQ9), None)
    if phq9 is None:
        raise SystemExit(f"unexpected: the server has no {PHQ9}")
    canonical = f"{phq9['url']}|{phq9['version']}"
    print(f"{len(questionnaires)} active questionnaires; submitting to {canonical}")

    # 2. Submit, with your own identifier so that a retry can never store it twice.
    patient, response_id = f"fhirpy-{uuid.uuid4().hex[:12]}", str(uuid.uuid4())
    submitted = client.resource("QuestionnaireResponse", **phq9_response(patient, canonical, response_id))
    submitted.save()
    total = next(item for item in submitted["item"] if item["linkId"] == "/44261-6")["answer"][0]["valueInteger"]
    check(total == 10, f"the server scored the PHQ-9 {total}, not 10")
    print(f"stored QuestionnaireResponse/{submitted.id} for Patient/{patient}: PHQ-9 total {total}")

    # 3. The same submission again (a retry after a timeout): the stored response comes back, no second copy.
    retry = client.resource("QuestionnaireResponse", **phq9_response(patient, canonical, response_id))
    retry.save()
    check(retry.id == submitted.id, f"the retry was stored as {retry.id}")
    copies = client.resources("QuestionnaireResponse").search(identifier=f"{RESPONSE_IDS}|{response_id}").count()
    check(copies == 1, f"{copies} responses carry the identifier")
    print(f"retried: the same QuestionnaireResponse/{retry.id}, stored once")

    # 4. The scores as Observations, newest first: the new person's, then a demo person's PHQ-9 trend.
    scores = client.resources("Observation").search(patient=patient, category="survey").sort("-date").fetch_all()
    values = [score_line(o) for o in scores if "valueInteger" in o]
    check(values == ["2026-11-20  PHQ-9 total score (0–27): 10 (Moderate)"], f"Observations {values}")
    print(f"Patient/{patient}: {values[0]}")
    trend = client.resources("Observation").search(patient="demo-01", code=PHQ9_TOTAL).sort("-date").fetch_all()
    check(len(trend) >= 2, "Patient/demo-01 has fewer than two PHQ-9 scores: is the demo data loaded?")
    dates = [o["effectiveDateTime"] for o in trend]
    check(dates == sorted(dates, reverse=True), "the PHQ-9 scores are not newest first")
    print(f"Patient/demo-01, PHQ-9, newest first ({len(trend)} scores):")
    for observation in trend:
        print(f"  {score_line(observation)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080/fhir")
