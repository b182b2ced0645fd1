"""outbox events, subscriptions and their delivery, groups, bulk exports

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-23 15:00:45.144978
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_job",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("group_id", sa.String(length=64), nullable=True),
        sa.Column("types", sa.Text(), nullable=False),
        sa.Column("since", sa.DateTime(), nullable=True),
        sa.Column("request_url", sa.Text(), nullable=False),
        sa.Column("owner_client_id", sa.String(length=256), nullable=True),
        sa.Column("owner_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("transaction_time", sa.DateTime(), nullable=True),
        sa.Column("exported", sa.BigInteger(), nullable=False),
        sa.Column("last_polled_at", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_export_job")),
        sa.UniqueConstraint("id", name=op.f("uq_export_job_id")),
    )
    with op.batch_alter_table("export_job", schema=None) as batch_op:
        batch_op.create_index("ix_export_job_status", ["status", "pk"], unique=False)

    op.create_table(
        "fhir_group",
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(), nullable=False),
        sa.Column("deleted", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("resource_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_fhir_group")),
        sa.UniqueConstraint("id", name=op.f("uq_fhir_group_id")),
    )
    with op.batch_alter_table("fhir_group", schema=None) as batch_op:
        batch_op.create_index("ix_fhir_group_updated", ["last_updated", "pk"], unique=False)

    op.create_table(
        "outbox_event",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("topic", sa.String(length=512), nullable=False),
        sa.Column("focus_type", sa.String(length=64), nullable=False),
        sa.Column("focus_id", sa.String(length=64), nullable=False),
        sa.Column("focus_version", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("patient_id", sa.String(length=128), nullable=True),
        sa.Column("questionnaire", sa.String(length=600), nullable=True),
        sa.Column("codes", sa.Text(), nullable=True),
        sa.Column("dispatched", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox_event")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("outbox_event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_event_pending",
            ["seq"],
            unique=False,
            postgresql_where=sa.text("NOT dispatched"),
            sqlite_where=sa.text("NOT dispatched"),
        )

    op.create_table(
        "subscription",
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("topic", sa.String(length=512), nullable=False),
        sa.Column("endpoint", sa.String(length=2048), nullable=True),
        sa.Column("patient_id", sa.String(length=128), nullable=True),
        sa.Column("owner_client_id", sa.String(length=256), nullable=True),
        sa.Column("owner_json", sa.Text(), nullable=True),
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(), nullable=False),
        sa.Column("deleted", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("resource_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_subscription")),
        sa.UniqueConstraint("id", name=op.f("uq_subscription_id")),
    )
    with op.batch_alter_table("subscription", schema=None) as batch_op:
        batch_op.create_index("ix_subscription_patient", ["patient_id"], unique=False)
        batch_op.create_index("ix_subscription_topic_status", ["topic", "status"], unique=False)
        batch_op.create_index("ix_subscription_updated", ["last_updated", "pk"], unique=False)

    op.create_table(
        "worker_lock",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_worker_lock")),
    )
    op.create_table(
        "export_file",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("job_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_pk"], ["export_job.pk"], name=op.f("fk_export_file_job_pk_export_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_export_file")),
        sa.UniqueConstraint("job_pk", "resource_type", "part", name="uq_export_file_part"),
    )
    with op.batch_alter_table("export_file", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_export_file_job_pk"), ["job_pk"], unique=False)

    op.create_table(
        "group_member",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("group_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("member_type", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_pk"], ["fhir_group.pk"], name=op.f("fk_group_member_group_pk_fhir_group"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_group_member")),
    )
    with op.batch_alter_table("group_member", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_group_member_group_pk"), ["group_pk"], unique=False)
        batch_op.create_index("ix_group_member_lookup", ["member_id", "member_type"], unique=False)

    op.create_table(
        "subscription_delivery",
        sa.Column(
            "subscription_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False
        ),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("events_since_start", sa.BigInteger(), nullable=False),
        sa.Column("delivered_through", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_seconds", sa.Integer(), nullable=True),
        sa.Column("heartbeat_due_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_pk"],
            ["subscription.pk"],
            name=op.f("fk_subscription_delivery_subscription_pk_subscription"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subscription_pk", name=op.f("pk_subscription_delivery")),
    )
    with op.batch_alter_table("subscription_delivery", schema=None) as batch_op:
        batch_op.create_index("ix_subscription_delivery_due", ["next_attempt_at"], unique=False)

    op.create_table(
        "subscription_event",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("subscription_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_number", sa.BigInteger(), nullable=False),
        sa.Column("outbox_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["outbox_seq"],
            ["outbox_event.seq"],
            name=op.f("fk_subscription_event_outbox_seq_outbox_event"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscription_pk"],
            ["subscription.pk"],
            name=op.f("fk_subscription_event_subscription_pk_subscription"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_subscription_event")),
        sa.UniqueConstraint("subscription_pk", "event_number", name="uq_subscription_event_number"),
    )
    with op.batch_alter_table("subscription_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subscription_event_outbox_seq"), ["outbox_seq"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("subscription_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscription_event_outbox_seq"))

    op.drop_table("subscription_event")
    with op.batch_alter_table("subscription_delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_subscription_delivery_due")

    op.drop_table("subscription_delivery")
    with op.batch_alter_table("group_member", schema=None) as batch_op:
        batch_op.drop_index("ix_group_member_lookup")
        batch_op.drop_index(batch_op.f("ix_group_member_group_pk"))

    op.drop_table("group_member")
    with op.batch_alter_table("export_file", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_export_file_job_pk"))

    op.drop_table("export_file")
    op.drop_table("worker_lock")
    with op.batch_alter_table("subscription", schema=None) as batch_op:
        batch_op.drop_index("ix_subscription_updated")
        batch_op.drop_index("ix_subscription_topic_status")
        batch_op.drop_index("ix_subscription_patient")

    op.drop_table("subscription")
    with op.batch_alter_table("outbox_event", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_event_pending",
            postgresql_where=sa.text("NOT dispatched"),
            sqlite_where=sa.text("NOT dispatched"),
        )

    op.drop_table("outbox_event")
    with op.batch_alter_table("fhir_group", schema=None) as batch_op:
        batch_op.drop_index("ix_fhir_group_updated")

    op.drop_table("fhir_group")
    with op.batch_alter_table("export_job", schema=None) as batch_op:
        batch_op.drop_index("ix_export_job_status")

    op.drop_table("export_job")
