"""audit events

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 14:36:00.645738
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("subtype", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=2), nullable=False),
        sa.Column("outcome", sa.String(length=4), nullable=False),
        sa.Column("agent", sa.String(length=256), nullable=True),
        sa.Column("patient_id", sa.String(length=128), nullable=True),
        sa.Column("entity_type", sa.String(length=64), nullable=True),
        sa.Column("entity_id", sa.String(length=64), nullable=True),
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(), nullable=False),
        sa.Column("deleted", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("resource_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_audit_event")),
        sa.UniqueConstraint("id", name=op.f("uq_audit_event_id")),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index("ix_audit_event_agent", ["agent", "last_updated", "pk"], unique=False)
        batch_op.create_index("ix_audit_event_entity", ["entity_id", "entity_type"], unique=False)
        batch_op.create_index("ix_audit_event_patient", ["patient_id", "last_updated", "pk"], unique=False)
        batch_op.create_index("ix_audit_event_updated", ["last_updated", "pk"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_updated")
        batch_op.drop_index("ix_audit_event_patient")
        batch_op.drop_index("ix_audit_event_entity")
        batch_op.drop_index("ix_audit_event_agent")

    op.drop_table("audit_event")
