"""idempotent responses by identifier

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 14:45:58.295395
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("questionnaire_response", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("identifier_system_key", sa.String(length=512), server_default="", nullable=False)
        )
        batch_op.drop_index(batch_op.f("ix_questionnaire_response_identifier"))
    op.execute("UPDATE questionnaire_response SET identifier_system_key = COALESCE(identifier_system, '')")
    with op.batch_alter_table("questionnaire_response", schema=None) as batch_op:
        batch_op.create_index(
            "uq_questionnaire_response_identifier_live",
            ["identifier_value", "identifier_system_key"],
            unique=True,
            postgresql_where=sa.text("NOT deleted AND identifier_value IS NOT NULL"),
            sqlite_where=sa.text("NOT deleted AND identifier_value IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("questionnaire_response", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_questionnaire_response_identifier_live",
            postgresql_where=sa.text("NOT deleted AND identifier_value IS NOT NULL"),
            sqlite_where=sa.text("NOT deleted AND identifier_value IS NOT NULL"),
        )
        batch_op.create_index(
            batch_op.f("ix_questionnaire_response_identifier"), ["identifier_value", "identifier_system"], unique=False
        )
        batch_op.drop_column("identifier_system_key")
