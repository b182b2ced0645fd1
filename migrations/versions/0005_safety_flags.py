"""safety flags

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 14:47:26.312071
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flag",
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("subject_type", sa.String(length=64), nullable=True),
        sa.Column("subject_id", sa.String(length=128), nullable=True),
        sa.Column("derived_from_id", sa.String(length=64), nullable=True),
        sa.Column("source_key", sa.String(length=256), nullable=True),
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(), nullable=False),
        sa.Column("deleted", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("resource_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_flag")),
        sa.UniqueConstraint("id", name=op.f("uq_flag_id")),
    )
    with op.batch_alter_table("flag", schema=None) as batch_op:
        batch_op.create_index("ix_flag_derived_from", ["derived_from_id"], unique=False)
        batch_op.create_index("ix_flag_subject_status", ["subject_id", "subject_type", "status", "pk"], unique=False)
        batch_op.create_index("ix_flag_updated", ["last_updated", "pk"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("flag", schema=None) as batch_op:
        batch_op.drop_index("ix_flag_updated")
        batch_op.drop_index("ix_flag_subject_status")
        batch_op.drop_index("ix_flag_derived_from")

    op.drop_table("flag")
