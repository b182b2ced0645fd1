"""terminology

ValueSet and CodeSystem tables: canonical (url|version, unique among live ones), name and status as search columns.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 15:55:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TABLES = ("value_set", "code_system")


def upgrade() -> None:
    for table in TABLES:
        op.create_table(
            table,
            sa.Column("url", sa.String(length=512), nullable=True),
            sa.Column("version", sa.String(length=64), nullable=True),
            sa.Column("version_key", sa.String(length=64), nullable=False),
            sa.Column("name", sa.String(length=256), nullable=True),
            sa.Column("name_folded", sa.String(length=256), nullable=True),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
            sa.Column("id", sa.String(length=64), nullable=False),
            sa.Column("version_id", sa.Integer(), nullable=False),
            sa.Column("last_updated", sa.DateTime(), nullable=False),
            sa.Column("deleted", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
            sa.Column("resource_json", sa.Text(), nullable=True),
            sa.PrimaryKeyConstraint("pk", name=op.f(f"pk_{table}")),
            sa.UniqueConstraint("id", name=op.f(f"uq_{table}_id")),
        )
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f"ix_{table}_updated", ["last_updated", "pk"], unique=False)
            batch_op.create_index(batch_op.f(f"ix_{table}_url"), ["url"], unique=False)
            batch_op.create_index(batch_op.f(f"ix_{table}_name_folded"), ["name_folded"], unique=False)
            batch_op.create_index(
                f"uq_{table}_canonical_live",
                ["url", "version_key"],
                unique=True,
                postgresql_where=sa.text("NOT deleted"),
                sqlite_where=sa.text("NOT deleted"),
            )


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(
                f"uq_{table}_canonical_live",
                postgresql_where=sa.text("NOT deleted"),
                sqlite_where=sa.text("NOT deleted"),
            )
            batch_op.drop_index(batch_op.f(f"ix_{table}_name_folded"))
            batch_op.drop_index(batch_op.f(f"ix_{table}_url"))
            batch_op.drop_index(f"ix_{table}_updated")
        op.drop_table(table)
