"""Growing a store to 10k, 100k or 1M scored responses quickly, for the read and search benchmarks.

A set of template responses is submitted through the service's real submission path (validated, scored,
extracted into Observations), in-process. The store then grows by copies of those rows: each copy of a
template person is a new person (new subject), each copied response and Observation gets a new id, and the
stored JSON is rewritten to match (ids, references, subject), so a read serves exactly what a submission would
have stored. The index rows (search columns, Observation tokens) are copied with them. Copies skip the
history rows, Provenance and AuditEvents of the templates: reads by id and searches never touch those tables.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, insert, select, text

from bench.cds_patient_view import response_to
from service.app import create_app
from service.config import PROJECT_ROOT, Settings
from service.store.db import create_db_engine
from service.store.models import Base

INSTRUMENTS = ("phq-9", "gad-7", "qpr-15", "k10")
TEMPLATE_PEOPLE = 20
RESPONSES_EACH = 25  # per person and instrument: two years of monthly measures
TEMPLATES = TEMPLATE_PEOPLE * len(INSTRUMENTS) * RESPONSES_EACH  # 2,000 responses
BATCH = 2_000


@dataclass
class Template:
    response: dict[str, Any]  # questionnaire_response row
    observations: list[tuple[dict[str, Any], list[dict[str, Any]]]]  # observation rows with their token rows
    person: int


class Store:
    """A database holding ``size`` responses: templates first, then copies. By default 20 template people answer
    four instruments 25 times each; ``instruments``, ``template_people`` and ``responses_each`` change that."""

    def __init__(
        self,
        database_url: str,
        *,
        instruments: tuple[str, ...] = INSTRUMENTS,
        template_people: int = TEMPLATE_PEOPLE,
        responses_each: int = RESPONSES_EACH,
    ) -> None:
        self.database_url = database_url
        self.instruments = instruments
        self.template_people = template_people
        self.responses_each = responses_each
        self.templates: list[Template] = []
        self.copies = 0
        self.engine: Engine | None = None

    @property
    def size(self) -> int:
        return len(self.templates) * (1 + self.copies)

    def people(self) -> int:
        return self.template_people * (1 + self.copies)

    def subjects(self) -> Iterator[str]:
        """Every person's Patient id, templates and copies."""
        for person in range(self.template_people):
            yield f"person-{person}"
            for copy in range(1, self.copies + 1):
                yield f"person-{person}-copy-{copy}"

    def submit_templates(self, seed: int = 20261204) -> None:
        settings = Settings(
            database_url=self.database_url,
            base_url="http://127.0.0.1/fhir",
            log_level="ERROR",
            auth_mode="none",
            load_questionnaires_on_start=True,
        )
        app = create_app(settings)
        client = app.test_client()
        rng = random.Random(seed)
        definitions = {
            name: json.loads((PROJECT_ROOT / "questionnaires" / name / "questionnaire.json").read_text())
            for name in self.instruments
        }
        start = datetime(2024, 1, 1, 9, tzinfo=UTC)
        for person in range(self.template_people):
            for month in range(self.responses_each):
                for name in self.instruments:
                    authored = start + timedelta(days=28 * month + person, minutes=rng.randint(0, 600))
                    body = response_to(definitions[name], f"person-{person}", authored, rng)
                    result = client.post("/fhir/QuestionnaireResponse", json=body)
                    if result.status_code != 201:
                        raise SystemExit(f"a template submission failed: {result.get_data(as_text=True)}")
        app.web.services.db.dispose()
        self.engine = create_db_engine(self.database_url)
        tables = Base.metadata.tables
        qr, obs, token = tables["questionnaire_response"], tables["observation"], tables["observation_token"]
        with self.engine.connect() as connection:
            responses = [dict(row._mapping) for row in connection.execute(select(qr).order_by(qr.c.pk))]
            observations = [dict(row._mapping) for row in connection.execute(select(obs).order_by(obs.c.pk))]
            tokens = [dict(row._mapping) for row in connection.execute(select(token).order_by(token.c.pk))]
        tokens_of: dict[int, list[dict[str, Any]]] = {}
        for row in tokens:
            tokens_of.setdefault(row["observation_pk"], []).append(row)
        observations_of: dict[str, list[tuple[dict[str, Any], list[dict[str, Any]]]]] = {}
        for row in observations:
            observations_of.setdefault(row["derived_from_id"], []).append((row, tokens_of.get(row["pk"], [])))
        self.templates = [
            Template(row, observations_of.get(row["id"], []), int(row["subject_id"].split("-")[1])) for row in responses
        ]

    def grow_to(self, size: int) -> None:
        """Add copies of the templates until the store holds ``size`` responses."""
        assert self.engine is not None, "submit the templates first"
        while self.size < size:
            self.copies += 1
            self._insert(self._copy(self.copies))

    def _copy(self, number: int) -> Iterator[tuple[dict[str, Any], list[tuple[dict[str, Any], list[dict[str, Any]]]]]]:
        for template in self.templates:
            old_subject = f'"Patient/person-{template.person}"'
            new_subject_id = f"person-{template.person}-copy-{number}"
            renames = {template.response["id"]: str(uuid.uuid4())}
            for obs_row, _ in template.observations:
                renames[obs_row["id"]] = str(uuid.uuid4())

            def rewrite(
                body: str, renames: dict[str, str] = renames, old: str = old_subject, subject: str = new_subject_id
            ) -> str:
                body = body.replace(old, f'"Patient/{subject}"')
                for old_id, new_id in renames.items():
                    body = body.replace(old_id, new_id)
                return body

            response = dict(template.response)
            response.pop("pk")
            response.update(
                id=renames[response["id"]], subject_id=new_subject_id, resource_json=rewrite(response["resource_json"])
            )
            observations = []
            for obs_row, tokens in template.observations:
                copied = dict(obs_row)
                copied.update(
                    id=renames[obs_row["id"]],
                    subject_id=new_subject_id,
                    derived_from_id=response["id"],
                    resource_json=rewrite(obs_row["resource_json"]),
                )
                observations.append((copied, tokens))
            yield response, observations

    def _insert(self, rows: Iterator[tuple[dict[str, Any], list[tuple[dict[str, Any], list[dict[str, Any]]]]]]) -> None:
        assert self.engine is not None
        tables = Base.metadata.tables
        qr, obs, token = tables["questionnaire_response"], tables["observation"], tables["observation_token"]
        with self.engine.begin() as connection:
            next_pk = (connection.scalar(select(func.max(obs.c.pk))) or 0) + 1
            batch_responses: list[dict[str, Any]] = []
            batch_observations: list[dict[str, Any]] = []
            batch_tokens: list[dict[str, Any]] = []
            for response, observations in rows:
                batch_responses.append(response)
                for obs_row, tokens in observations:
                    obs_row["pk"] = next_pk
                    batch_observations.append(obs_row)
                    for token_row in tokens:
                        copied = {k: v for k, v in token_row.items() if k != "pk"}
                        copied["observation_pk"] = next_pk
                        batch_tokens.append(copied)
                    next_pk += 1
                if len(batch_responses) >= BATCH:
                    self._flush(connection, qr, obs, token, batch_responses, batch_observations, batch_tokens)
            self._flush(connection, qr, obs, token, batch_responses, batch_observations, batch_tokens)
            if connection.dialect.name == "postgresql":
                sequence = "SELECT setval(pg_get_serial_sequence('observation', 'pk'), max(pk)) FROM observation"
                connection.execute(text(sequence))

    @staticmethod
    def _flush(connection: Any, qr: Any, obs: Any, token: Any, *batches: list[dict[str, Any]]) -> None:
        for table, batch in zip((qr, obs, token), batches, strict=True):
            if batch:
                connection.execute(insert(table), batch)
                batch.clear()

    def analyze(self) -> None:
        assert self.engine is not None
        with self.engine.begin() as connection:
            connection.execute(text("ANALYZE"))

    def sample_ids(self, count: int, rng: random.Random) -> list[str]:
        assert self.engine is not None
        qr = Base.metadata.tables["questionnaire_response"]
        with self.engine.connect() as connection:
            highest = connection.scalar(select(func.max(qr.c.pk))) or 0
            picks = sorted(rng.randint(1, highest) for _ in range(count))
            found = connection.execute(select(qr.c.id).where(qr.c.pk.in_(picks))).scalars().all()
        return list(found)

    def sample_searches(self, count: int, rng: random.Random) -> list[tuple[str, str]]:
        """(person, questionnaire url) pairs across every copy made so far."""
        pairs = []
        for _ in range(count):
            person = rng.randrange(self.template_people)
            copy = rng.randint(0, self.copies)
            subject = f"person-{person}" if copy == 0 else f"person-{person}-copy-{copy}"
            pairs.append((subject, f"https://recovery-proms.org/fhir/Questionnaire/{rng.choice(self.instruments)}"))
        return pairs

    def dispose(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
