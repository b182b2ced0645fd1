"""export files and clinician-app sessions in the database: no state on a node's disk

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 12:18:56.260981
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "app_session",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_session")),
    )
    with op.batch_alter_table("app_session", schema=None) as batch_op:
        batch_op.create_index("ix_app_session_expires_at", ["expires_at"], unique=False)

    op.create_table(
        "export_chunk",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("job_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_pk"], ["export_job.pk"], name=op.f("fk_export_chunk_job_pk_export_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_export_chunk")),
        sa.UniqueConstraint("job_pk", "resource_type", "part", "seq", name="uq_export_chunk_seq"),
    )


def downgrade() -> None:
    op.drop_table("export_chunk")
    with op.batch_alter_table("app_session", schema=None) as batch_op:
        batch_op.drop_index("ix_app_session_expires_at")
    op.drop_table("app_session")
