"""observations and provenance

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 14:08:24.522556
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "observation",
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("subject_type", sa.String(length=64), nullable=True),
        sa.Column("subject_id", sa.String(length=128), nullable=True),
        sa.Column("effective_low", sa.DateTime(), nullable=True),
        sa.Column("effective_high", sa.DateTime(), nullable=True),
        sa.Column("effective_key", sa.DateTime(), nullable=False),
        sa.Column("derived_from_id", sa.String(length=64), nullable=True),
        sa.Column("source_key", sa.String(length=128), nullable=True),
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(), nullable=False),
        sa.Column("deleted", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("resource_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_observation")),
        sa.UniqueConstraint("id", name=op.f("uq_observation_id")),
    )
    with op.batch_alter_table("observation", schema=None) as batch_op:
        batch_op.create_index("ix_observation_derived_from", ["derived_from_id", "source_key"], unique=False)
        batch_op.create_index("ix_observation_effective", ["effective_key", "pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_observation_status"), ["status"], unique=False)
        batch_op.create_index(
            "ix_observation_subject_effective", ["subject_id", "subject_type", "effective_key", "pk"], unique=False
        )
        batch_op.create_index("ix_observation_updated", ["last_updated", "pk"], unique=False)

    op.create_table(
        "provenance",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(), nullable=False),
        sa.Column("deleted", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("resource_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_provenance")),
        sa.UniqueConstraint("id", name=op.f("uq_provenance_id")),
    )
    with op.batch_alter_table("provenance", schema=None) as batch_op:
        batch_op.create_index("ix_provenance_updated", ["last_updated", "pk"], unique=False)

    op.create_table(
        "observation_token",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("observation_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("param", sa.String(length=16), nullable=False),
        sa.Column("system", sa.String(length=512), nullable=False),
        sa.Column("code", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["observation_pk"],
            ["observation.pk"],
            name=op.f("fk_observation_token_observation_pk_observation"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_observation_token")),
    )
    with op.batch_alter_table("observation_token", schema=None) as batch_op:
        batch_op.create_index("ix_observation_token_lookup", ["param", "code", "system"], unique=False)
        batch_op.create_index(batch_op.f("ix_observation_token_observation_pk"), ["observation_pk"], unique=False)

    op.create_table(
        "provenance_target",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("provenance_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("target_type", sa.String(length=64), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["provenance_pk"],
            ["provenance.pk"],
            name=op.f("fk_provenance_target_provenance_pk_provenance"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_provenance_target")),
    )
    with op.batch_alter_table("provenance_target", schema=None) as batch_op:
        batch_op.create_index("ix_provenance_target_lookup", ["target_id", "target_type"], unique=False)
        batch_op.create_index(batch_op.f("ix_provenance_target_provenance_pk"), ["provenance_pk"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("provenance_target", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_provenance_target_provenance_pk"))
        batch_op.drop_index("ix_provenance_target_lookup")

    op.drop_table("provenance_target")
    with op.batch_alter_table("observation_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_observation_token_observation_pk"))
        batch_op.drop_index("ix_observation_token_lookup")

    op.drop_table("observation_token")
    with op.batch_alter_table("provenance", schema=None) as batch_op:
        batch_op.drop_index("ix_provenance_updated")

    op.drop_table("provenance")
    with op.batch_alter_table("observation", schema=None) as batch_op:
        batch_op.drop_index("ix_observation_updated")
        batch_op.drop_index("ix_observation_subject_effective")
        batch_op.drop_index(batch_op.f("ix_observation_status"))
        batch_op.drop_index("ix_observation_effective")
        batch_op.drop_index("ix_observation_derived_from")

    op.drop_table("observation")
