"""Typed tables: one per resource type with indexed search columns and the full JSON, plus every version."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite needs INTEGER (not BIGINT) for an auto-incrementing rowid primary key.
AutoPk = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: DateTime(timezone=False)}


class ResourceRow(Base):
    """Columns every stored resource has: a surrogate key for keyset paging, the FHIR id and version."""

    __abstract__ = True

    pk: Mapped[int] = mapped_column(AutoPk, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    version_id: Mapped[int]
    last_updated: Mapped[datetime]
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # The resource exactly as served (meta.versionId and meta.lastUpdated included): reads send it as is.
    resource_json: Mapped[str | None] = mapped_column(Text)


class ResourceVersion(Base):
    """Every version of every resource, deletions included (history and vread)."""

    __tablename__ = "resource_version"
    __table_args__ = (
        UniqueConstraint("resource_type", "resource_id", "version_id", name="uq_resource_version_key"),
        Index("ix_resource_version_type_updated", "resource_type", "last_updated", "pk"),
    )

    pk: Mapped[int] = mapped_column(AutoPk, primary_key=True, autoincrement=True)
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int]
    last_updated: Mapped[datetime]
    method: Mapped[str] = mapped_column(String(8))  # POST | PUT | DELETE
    resource_json: Mapped[str | None] = mapped_column(Text)


class QuestionnaireRow(ResourceRow):
    __tablename__ = "questionnaire"
    __table_args__ = (
        # url|version is unique among live Questionnaires; a deleted one frees its canonical.
        Index(
            "uq_questionnaire_canonical_live",
            "url",
            "version_key",
            unique=True,
            postgresql_where=text("NOT deleted"),
            sqlite_where=text("NOT deleted"),
        ),
        Index("ix_questionnaire_updated", "last_updated", "pk"),
    )

    url: Mapped[str | None] = mapped_column(String(512), index=True)
    version: Mapped[str | None] = mapped_column(String(64))
    # version, or '' when the Questionnaire has none, so that uniqueness also holds for unversioned ones.
    version_key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(256))
    title: Mapped[str | None] = mapped_column(String(512))
    name_folded: Mapped[str | None] = mapped_column(String(256), index=True)
    title_folded: Mapped[str | None] = mapped_column(String(512), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)

    codes: Mapped[list[QuestionnaireCode]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", passive_deletes=True
    )


class QuestionnaireCode(Base):
    __tablename__ = "questionnaire_code"
    __table_args__ = (Index("ix_questionnaire_code_system_code", "code", "system"),)

    pk: Mapped[int] = mapped_column(AutoPk, primary_key=True, autoincrement=True)
    questionnaire_pk: Mapped[int] = mapped_column(ForeignKey("questionnaire.pk", ondelete="CASCADE"), index=True)
    system: Mapped[str] = mapped_column(String(512), default="")
    code: Mapped[str] = mapped_column(String(128))


class QuestionnaireResponseRow(ResourceRow):
    __tablename__ = "questionnaire_response"
    __table_args__ = (
        # The clinician's view and the common EHR query: one person's responses to one instrument, newest first.
        Index(
            "ix_questionnaire_response_subject_questionnaire",
            "subject_id",
            "subject_type",
            "questionnaire_url",
            "authored_key",
            "pk",
        ),
        Index("ix_questionnaire_response_subject_authored", "subject_id", "subject_type", "authored_key", "pk"),
        # A response carrying a business identifier is stored at most once (idempotent retries).
        Index(
            "uq_questionnaire_response_identifier_live",
            "identifier_value",
            "identifier_system_key",
            unique=True,
            postgresql_where=text("NOT deleted AND identifier_value IS NOT NULL"),
            sqlite_where=text("NOT deleted AND identifier_value IS NOT NULL"),
        ),
        Index("ix_questionnaire_response_authored", "authored_key", "pk"),
        Index("ix_questionnaire_response_updated", "last_updated", "pk"),
    )

    questionnaire_url: Mapped[str] = mapped_column(String(512))
    questionnaire_version: Mapped[str | None] = mapped_column(String(64))
    questionnaire_pk: Mapped[int | None] = mapped_column(ForeignKey("questionnaire.pk"), index=True)
    status: Mapped[str] = mapped_column(String(24), index=True)
    subject_type: Mapped[str | None] = mapped_column(String(64))
    subject_id: Mapped[str | None] = mapped_column(String(128))
    author_type: Mapped[str | None] = mapped_column(String(64))
    author_id: Mapped[str | None] = mapped_column(String(128), index=True)
    authored_low: Mapped[datetime | None]
    authored_high: Mapped[datetime | None]
    # authored_low, or the earliest possible instant when the response has no authored date:
    # a NOT NULL sort key keeps keyset paging simple and indexable.
    authored_key: Mapped[datetime]
    identifier_system: Mapped[str | None] = mapped_column(String(512))
    identifier_value: Mapped[str | None] = mapped_column(String(256))
    # identifier_system or '' (NULLs are distinct in unique indexes, so a system-less identifier needs a key).
    identifier_system_key: Mapped[str] = mapped_column(String(512), server_default="")


class ObservationRow(ResourceRow):
    """Observations the service derives from scored responses (never written by clients)."""

    __tablename__ = "observation"
    __table_args__ = (
        Index("ix_observation_subject_effective", "subject_id", "subject_type", "effective_key", "pk"),
        Index("ix_observation_derived_from", "derived_from_id", "source_key"),
        Index("ix_observation_effective", "effective_key", "pk"),
        Index("ix_observation_updated", "last_updated", "pk"),
        # Outcome reports: one score's Observations, person by person, in date order (the index's own order), with
        # every column they read, so that the table itself is not read (an index-only scan).
        Index(
            "ix_observation_code_subject",
            *("code_key", "subject_id", "effective_key", "pk", "value_number", "status", "subject_type", "deleted"),
        ),
    )

    status: Mapped[str] = mapped_column(String(24), index=True)
    subject_type: Mapped[str | None] = mapped_column(String(64))
    subject_id: Mapped[str | None] = mapped_column(String(128))
    effective_low: Mapped[datetime | None]
    effective_high: Mapped[datetime | None]
    effective_key: Mapped[datetime]
    # The response it was derived from, and which score or item of it ('panel' for the group).
    derived_from_id: Mapped[str | None] = mapped_column(String(64))
    source_key: Mapped[str | None] = mapped_column(String(128))
    # A numeric value (valueInteger, valueQuantity.value): what outcome measures compare, without reading JSON.
    value_number: Mapped[float | None] = mapped_column(Float)
    # The first coding of its code as "system|code": a score Observation's carries its score item's first code, the
    # one outcome reports identify the score by (all its codes are search tokens too).
    code_key: Mapped[str | None] = mapped_column(String(641))

    tokens: Mapped[list[ObservationToken]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", passive_deletes=True
    )


class ObservationToken(Base):
    """Coded search values of an Observation: its codes ('code') and categories ('category')."""

    __tablename__ = "observation_token"
    __table_args__ = (Index("ix_observation_token_lookup", "param", "code", "system"),)

    pk: Mapped[int] = mapped_column(AutoPk, primary_key=True, autoincrement=True)
    observation_pk: Mapped[int] = mapped_column(ForeignKey("observation.pk", ondelete="CASCADE"), index=True)
    param: Mapped[str] = mapped_column(String(16))
    system: Mapped[str] = mapped_column(String(512), default="")
    code: Mapped[str] = mapped_column(String(128))


class ProvenanceRow(ResourceRow):
    __tablename__ = "provenance"
    __table_args__ = (Index("ix_provenance_updated", "last_updated", "pk"),)

    targets: Mapped[list[ProvenanceTarget]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", passive_deletes=True
    )


class ProvenanceTarget(Base):
    __tablename__ = "provenance_target"
    __table_args__ = (Index("ix_provenance_target_lookup", "target_id", "target_type"),)

    pk: Mapped[int] = mapped_column(AutoPk, primary_key=True, autoincrement=True)
    provenance_pk: Mapped[int] = mapped_column(ForeignKey("provenance.pk", ondelete="CASCADE"), index=True)
    target_type: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str] = mapped_column(String(64))


class AuditEventRow(ResourceRow):
    """One audited access (append-only: never updated, no version history)."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_agent", "agent", "last_updated", "pk"),
        Index("ix_audit_event_subtype", "subtype", "last_updated", "pk"),
        Index("ix_audit_event_updated", "last_updated", "pk"),
    )

    subtype: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(2))
    outcome: Mapped[str] = mapped_column(String(4))
    agent: Mapped[str | None] = mapped_column(String(256))
    # Every resource the access touched, the patients whose data it was among them ("Who saw this safety flag?",
    # "Who read anything about this person?").
    entities: Mapped[list[AuditEventEntity]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", passive_deletes=True
    )


class AuditEventEntity(Base):
    __tablename__ = "audit_event_entity"
    __table_args__ = (Index("ix_audit_event_entity_lookup", "entity_id", "entity_type", "audit_event_pk"),)

    pk: Mapped[int] = mapped_column(AutoPk, primary_key=True, autoincrement=True)
    audit_event_pk: Mapped[int] = mapped_column(ForeignKey("audit_event.pk", ondelete="CASCADE"), index=True)
    entity_type: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(128))


class FlagRow(ResourceRow):
    """Safety flags raised by scored responses (FHIR Flag), active until a clinician reviews them."""

    __tablename__ = "flag"
    __table_args__ = (
        Index("ix_flag_subject_status", "subject_id", "subject_type", "status", "pk"),
        Index("ix_flag_derived_from", "derived_from_id"),
        Index("ix_flag_updated", "last_updated", "pk"),
    )

    status: Mapped[str] = mapped_column(String(24))
    subject_type: Mapped[str | None] = mapped_column(String(64))
    subject_id: Mapped[str | None] = mapped_column(String(128))
    derived_from_id: Mapped[str | None] = mapped_column(String(64))
    source_key: Mapped[str | None] = mapped_column(String(256))


# Results for other services: topic-based subscriptions fed from an outbox, and Bulk Data exports -------------


class SubscriptionRow(ResourceRow):
    """Topic-based Subscriptions (R5 backport on R4). Whoever set one up is kept: it receives what they may read."""

    __tablename__ = "subscription"
    __table_args__ = (
        Index("ix_subscription_topic_status", "topic", "status"),
        Index("ix_subscription_patient", "patient_id"),
        Index("ix_subscription_updated", "last_updated", "pk"),
    )

    status: Mapped[str] = mapped_column(String(16))
    topic: Mapped[str] = mapped_column(String(512))
    endpoint: Mapped[str | None] = mapped_column(String(2048))
    # The one patient its filter names, if any (a patient-scoped client's subscriptions are in its compartment).
    patient_id: Mapped[str | None] = mapped_column(String(128))
    # The grant of the client that created or last changed it (JSON: client id, patient, scopes).
    owner_client_id: Mapped[str | None] = mapped_column(String(256))
    owner_json: Mapped[str | None] = mapped_column(Text)


class SubscriptionDelivery(Base):
    """How far one subscription's notifications have got: its event counter, retries and the claiming worker."""

    __tablename__ = "subscription_delivery"
    __table_args__ = (Index("ix_subscription_delivery_due", "next_attempt_at"),)

    subscription_pk: Mapped[int] = mapped_column(
        AutoPk, ForeignKey("subscription.pk", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    started_at: Mapped[datetime]
    events_since_start: Mapped[int] = mapped_column(BigInteger, default=0)
    delivered_through: Mapped[int] = mapped_column(BigInteger, default=0)  # highest event number acknowledged
    failures: Mapped[int] = mapped_column(Integer, default=0)  # consecutive failed attempts
    next_attempt_at: Mapped[datetime]
    heartbeat_seconds: Mapped[int | None]
    heartbeat_due_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None]


class OutboxEvent(Base):
    """One occurrence of a subscription topic, written in the same transaction as the change it reports."""

    __tablename__ = "outbox_event"
    __table_args__ = (
        Index(
            "ix_outbox_event_pending",
            "seq",
            postgresql_where=text("NOT dispatched"),
            sqlite_where=text("NOT dispatched"),
        ),
        # A sequence number is never reused on SQLite either, even after old events are removed.
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(AutoPk, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(512))
    focus_type: Mapped[str] = mapped_column(String(64))
    focus_id: Mapped[str] = mapped_column(String(64))
    focus_version: Mapped[int]
    occurred_at: Mapped[datetime]
    # What subscription filters match on.
    patient_id: Mapped[str | None] = mapped_column(String(128))
    questionnaire: Mapped[str | None] = mapped_column(String(600))  # canonical url|version
    codes: Mapped[str | None] = mapped_column(Text)  # JSON [[system, code], ...]
    # Matched to the subscriptions of the moment (and numbered for each) by a worker.
    dispatched: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class SubscriptionEvent(Base):
    """An outbox event as one subscription sees it: numbered consecutively within that subscription."""

    __tablename__ = "subscription_event"
    __table_args__ = (UniqueConstraint("subscription_pk", "event_number", name="uq_subscription_event_number"),)

    pk: Mapped[int] = mapped_column(AutoPk, primary_key=True, autoincrement=True)
    subscription_pk: Mapped[int] = mapped_column(ForeignKey("subscription.pk", ondelete="CASCADE"))
    event_number: Mapped[int] = mapped_column(BigInteger)
    outbox_seq: Mapped[int] = mapped_column(ForeignKey("outbox_event.seq", ondelete="CASCADE"), index=True)


class WorkerLock(Base):
    """A named lock the workers coordinate through, held by one worker until it expires."""

    __tablename__ = "worker_lock"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(128))
    expires_at: Mapped[datetime | None]


class GroupRow(ResourceRow):
    """Groups of patients (for Group-level Bulk Data export)."""

    __tablename__ = "fhir_group"
    __table_args__ = (Index("ix_fhir_group_updated", "last_updated", "pk"),)

    type: Mapped[str] = mapped_column(String(16))

    members: Mapped[list[GroupMember]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", passive_deletes=True
    )


class GroupMember(Base):
    __tablename__ = "group_member"
    __table_args__ = (Index("ix_group_member_lookup", "member_id", "member_type"),)

    pk: Mapped[int] = mapped_column(AutoPk, primary_key=True, autoincrement=True)
    group_pk: Mapped[int] = mapped_column(ForeignKey("fhir_group.pk", ondelete="CASCADE"), index=True)
    member_type: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[str] = mapped_column(String(64))


class MeasureRow(ResourceRow):
    """The outcome Measures the service evaluates (its built-in library, loaded like the questionnaires)."""

    __tablename__ = "measure"
    __table_args__ = (
        Index(
            "uq_measure_canonical_live",
            "url",
            "version_key",
            unique=True,
            postgresql_where=text("NOT deleted"),
            sqlite_where=text("NOT deleted"),
        ),
        Index("ix_measure_updated", "last_updated", "pk"),
    )

    url: Mapped[str | None] = mapped_column(String(512), index=True)
    version: Mapped[str | None] = mapped_column(String(64))
    version_key: Mapped[str] = mapped_column(String(64))  # version, or '' (as for Questionnaires)
    status: Mapped[str] = mapped_column(String(16))


class MeasureReportRow(ResourceRow):
    """The MeasureReport of each $evaluate-measure run: what was reported, for whom, over which period."""

    __tablename__ = "measure_report"
    __table_args__ = (
        Index("ix_measure_report_measure", "measure_url", "pk"),
        Index("ix_measure_report_subject", "subject_id", "subject_type", "pk"),
        Index("ix_measure_report_updated", "last_updated", "pk"),
    )

    measure_url: Mapped[str] = mapped_column(String(512))
    measure_version: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(16))  # individual | subject-list | summary
    subject_type: Mapped[str | None] = mapped_column(String(64))
    subject_id: Mapped[str | None] = mapped_column(String(128))
    period_low: Mapped[datetime | None]
    period_high: Mapped[datetime | None]
    date_low: Mapped[datetime | None]
    date_high: Mapped[datetime | None]


class TaskRow(ResourceRow):
    """Requests for a person to complete a Questionnaire (SDC's Task), open until answered, cancelled or expired."""

    __tablename__ = "task"
    __table_args__ = (
        Index("ix_task_subject_status", "subject_id", "subject_type", "status", "pk"),
        # The open Task a submitted response completes: same person, same instrument.
        Index("ix_task_open_questionnaire", "subject_id", "questionnaire_url", "status"),
        Index("ix_task_updated", "last_updated", "pk"),
        Index("ix_task_authored", "authored_key", "pk"),
    )

    status: Mapped[str] = mapped_column(String(24))
    code_system: Mapped[str | None] = mapped_column(String(512))
    code: Mapped[str | None] = mapped_column(String(128))
    subject_type: Mapped[str | None] = mapped_column(String(64))
    subject_id: Mapped[str | None] = mapped_column(String(128))
    owner_type: Mapped[str | None] = mapped_column(String(64))
    owner_id: Mapped[str | None] = mapped_column(String(128))
    requester_type: Mapped[str | None] = mapped_column(String(64))
    requester_id: Mapped[str | None] = mapped_column(String(128))
    focus_type: Mapped[str | None] = mapped_column(String(64))
    focus_id: Mapped[str | None] = mapped_column(String(128))
    questionnaire_url: Mapped[str | None] = mapped_column(String(512))
    questionnaire_version: Mapped[str | None] = mapped_column(String(64))
    authored_low: Mapped[datetime | None]
    authored_high: Mapped[datetime | None]
    authored_key: Mapped[datetime]
    period_low: Mapped[datetime | None]  # executionPeriod (the `period` search parameter)
    period_high: Mapped[datetime | None]
    # restriction.period: when the answers are wanted (its end is the due date).
    wanted_from: Mapped[datetime | None]
    wanted_until: Mapped[datetime | None]


class TaskInvitation(Base):
    """The one live completion link of a Task: only the SHA-256 of its token is kept. A new link replaces the row."""

    __tablename__ = "task_invitation"

    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    # Whom the link was sent to, as the audit names them (never an address).
    invitee: Mapped[str] = mapped_column(String(256))
    response_id: Mapped[str | None] = mapped_column(String(64))  # the in-progress response the page saves to
    # The e-mail address given with $invite, kept only while e-mailed reminders remain to be sent (then erased).
    address: Mapped[str | None] = mapped_column(String(320))


class CommunicationRow(ResourceRow):
    """A record of each message the service sent about a Task (an invitation or reminder e-mail): never its text."""

    __tablename__ = "communication"
    __table_args__ = (
        Index("ix_communication_subject", "subject_id", "subject_type", "pk"),
        Index("ix_communication_based_on", "based_on_id"),
        Index("ix_communication_updated", "last_updated", "pk"),
    )

    status: Mapped[str] = mapped_column(String(24))
    subject_type: Mapped[str | None] = mapped_column(String(64))
    subject_id: Mapped[str | None] = mapped_column(String(128))
    based_on_id: Mapped[str | None] = mapped_column(String(64))  # the Task
    sent_low: Mapped[datetime | None]
    sent_high: Mapped[datetime | None]


class TaskNotice(Base):
    """Each notice about a Task that must happen once (a reminder, an expiry): the primary key makes it so."""

    __tablename__ = "task_notice"

    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    notice: Mapped[str] = mapped_column(String(32), primary_key=True)  # reminder-3 | expired | ...
    sent_at: Mapped[datetime]


class TerminologyRow(ResourceRow):
    """What ValueSets and CodeSystems share: a canonical (url|version, unique among live ones) and a name."""

    __abstract__ = True

    url: Mapped[str | None] = mapped_column(String(512), index=True)
    version: Mapped[str | None] = mapped_column(String(64))
    version_key: Mapped[str] = mapped_column(String(64))  # version, or '' (as for Questionnaires)
    name: Mapped[str | None] = mapped_column(String(256))
    name_folded: Mapped[str | None] = mapped_column(String(256), index=True)
    status: Mapped[str] = mapped_column(String(16))


class ValueSetRow(TerminologyRow):
    """ValueSets: the answer lists Questionnaires point at (answerValueSet), shipped or written by clients."""

    __tablename__ = "value_set"
    __table_args__ = (
        Index(
            "uq_value_set_canonical_live",
            "url",
            "version_key",
            unique=True,
            postgresql_where=text("NOT deleted"),
            sqlite_where=text("NOT deleted"),
        ),
        Index("ix_value_set_updated", "last_updated", "pk"),
    )


class CodeSystemRow(TerminologyRow):
    """CodeSystems whose concepts the service holds (what a ValueSet that includes a whole system expands from)."""

    __tablename__ = "code_system"
    __table_args__ = (
        Index(
            "uq_code_system_canonical_live",
            "url",
            "version_key",
            unique=True,
            postgresql_where=text("NOT deleted"),
            sqlite_where=text("NOT deleted"),
        ),
        Index("ix_code_system_updated", "last_updated", "pk"),
    )


class ExportJob(Base):
    """A Bulk Data export: what was asked, by whom, and how far the worker has got."""

    __tablename__ = "export_job"
    __table_args__ = (Index("ix_export_job_status", "status", "pk"),)

    pk: Mapped[int] = mapped_column(AutoPk, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16))  # queued | running | completed | failed
    level: Mapped[str] = mapped_column(String(16))  # system | patient | group
    group_id: Mapped[str | None] = mapped_column(String(64))
    types: Mapped[str] = mapped_column(Text)  # comma-separated resource types
    since: Mapped[datetime | None]
    request_url: Mapped[str] = mapped_column(Text)
    owner_client_id: Mapped[str | None] = mapped_column(String(256))
    owner_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    transaction_time: Mapped[datetime | None]
    exported: Mapped[int] = mapped_column(BigInteger, default=0)
    last_polled_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None]


class ExportFile(Base):
    """One ndjson file of an export (a type's output is split past a size limit; errors are files too)."""

    __tablename__ = "export_file"
    __table_args__ = (UniqueConstraint("job_pk", "resource_type", "part", name="uq_export_file_part"),)

    pk: Mapped[int] = mapped_column(AutoPk, primary_key=True, autoincrement=True)
    job_pk: Mapped[int] = mapped_column(ForeignKey("export_job.pk", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # output | error
    resource_type: Mapped[str] = mapped_column(String(64))
    part: Mapped[int]
    count: Mapped[int]
    size_bytes: Mapped[int] = mapped_column(BigInteger)


class ExportChunk(Base):
    """A piece of an export file's bytes, in order (``seq``): files live in the database, not on a node's disk.

    The worker writes a file's chunks as it streams, each in the transaction that renews its claim on the export,
    so a worker that lost the claim writes nothing more; the file's ``ExportFile`` row is added only when the
    export finishes, and a file is served only once that row exists.
    """

    __tablename__ = "export_chunk"
    __table_args__ = (UniqueConstraint("job_pk", "resource_type", "part", "seq", name="uq_export_chunk_seq"),)

    pk: Mapped[int] = mapped_column(AutoPk, primary_key=True, autoincrement=True)
    job_pk: Mapped[int] = mapped_column(ForeignKey("export_job.pk", ondelete="CASCADE"))
    resource_type: Mapped[str] = mapped_column(String(64))
    part: Mapped[int]
    seq: Mapped[int]
    data: Mapped[bytes] = mapped_column(LargeBinary)


# The clinician app's sessions -------------------------------------------------------------------------------


class AppSession(Base):
    """A clinician-app session kept on the server: any web node reads it; it ends at ``expires_at`` or sign-out.

    ``id`` is a keyed hash of the id in the browser's cookie, never the id itself, so that reading this table
    (a backup, say) gives nobody a cookie that opens a session.
    """

    __tablename__ = "app_session"
    __table_args__ = (Index("ix_app_session_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    expires_at: Mapped[datetime]


class TokenUse(Base):
    """A JWT that may be used once (a CDS client's), by issuer and jti, kept until it expires."""

    __tablename__ = "token_use"
    __table_args__ = (Index("ix_token_use_expires", "expires_at"),)

    issuer: Mapped[str] = mapped_column(String(512), primary_key=True)
    jti: Mapped[str] = mapped_column(String(256), primary_key=True)
    expires_at: Mapped[datetime]
