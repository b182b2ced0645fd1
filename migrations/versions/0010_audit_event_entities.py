"""audit event entities: every entity and patient an AuditEvent names, searchable

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-06 14:00:00
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0007"
branch_labels = None
depends_on = None

BATCH = 5000


def _reference(what: object) -> tuple[str, str] | None:
    if not isinstance(what, dict) or not isinstance(what.get("reference"), str):
        return None
    parts = what["reference"].split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) < 2 or not parts[-2] or not parts[-1]:
        return None
    return parts[-2], parts[-1]


def upgrade() -> None:
    entity = op.create_table(
        "audit_event_entity",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("audit_event_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("entity_type", sa.String(length=64), nullable=False),
        sa.Column("entity_id", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["audit_event_pk"],
            ["audit_event.pk"],
            name=op.f("fk_audit_event_entity_audit_event_pk_audit_event"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_audit_event_entity")),
    )
    with op.batch_alter_table("audit_event_entity", schema=None) as batch_op:
        batch_op.create_index(
            "ix_audit_event_entity_lookup", ["entity_id", "entity_type", "audit_event_pk"], unique=False
        )
        batch_op.create_index(op.f("ix_audit_event_entity_audit_event_pk"), ["audit_event_pk"], unique=False)

    # Every entity of the events already stored (they were indexed by their first entity and patient only).
    connection = op.get_bind()
    events = sa.table("audit_event", sa.column("pk", sa.BigInteger), sa.column("resource_json", sa.Text))
    last = 0
    while True:
        rows = connection.execute(
            sa.select(events.c.pk, events.c.resource_json).where(events.c.pk > last).order_by(events.c.pk).limit(BATCH)
        ).all()
        if not rows:
            break
        values = []
        for pk, text in rows:
            resource = json.loads(text) if text else {}
            found = {_reference(item.get("what")) for item in resource.get("entity", []) if isinstance(item, dict)}
            values += [
                {"audit_event_pk": pk, "entity_type": rtype, "entity_id": rid}
                for rtype, rid in sorted(reference for reference in found if reference is not None)
            ]
        if values:
            connection.execute(entity.insert(), values)
        last = rows[-1][0]

    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_patient")
        batch_op.drop_index("ix_audit_event_entity")
        batch_op.drop_column("patient_id")
        batch_op.drop_column("entity_type")
        batch_op.drop_column("entity_id")
        batch_op.create_index("ix_audit_event_subtype", ["subtype", "last_updated", "pk"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_subtype")
        batch_op.add_column(sa.Column("entity_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("entity_type", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("patient_id", sa.String(length=128), nullable=True))
        batch_op.create_index("ix_audit_event_entity", ["entity_id", "entity_type"], unique=False)
        batch_op.create_index("ix_audit_event_patient", ["patient_id", "last_updated", "pk"], unique=False)
    op.drop_table("audit_event_entity")
