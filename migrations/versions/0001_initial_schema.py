"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 13:57:24.318408
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "questionnaire",
        sa.Column("url", sa.String(length=512), nullable=True),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("version_key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=True),
        sa.Column("title", sa.String(length=512), nullable=True),
        sa.Column("name_folded", sa.String(length=256), nullable=True),
        sa.Column("title_folded", sa.String(length=512), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(), nullable=False),
        sa.Column("deleted", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("resource_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_questionnaire")),
        sa.UniqueConstraint("id", name=op.f("uq_questionnaire_id")),
    )
    with op.batch_alter_table("questionnaire", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_questionnaire_name_folded"), ["name_folded"], unique=False)
        batch_op.create_index(batch_op.f("ix_questionnaire_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_questionnaire_title_folded"), ["title_folded"], unique=False)
        batch_op.create_index("ix_questionnaire_updated", ["last_updated", "pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_questionnaire_url"), ["url"], unique=False)
        batch_op.create_index(
            "uq_questionnaire_canonical_live",
            ["url", "version_key"],
            unique=True,
            postgresql_where=sa.text("NOT deleted"),
            sqlite_where=sa.text("NOT deleted"),
        )

    op.create_table(
        "resource_version",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("resource_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_resource_version")),
        sa.UniqueConstraint("resource_type", "resource_id", "version_id", name="uq_resource_version_key"),
    )
    with op.batch_alter_table("resource_version", schema=None) as batch_op:
        batch_op.create_index("ix_resource_version_type_updated", ["resource_type", "last_updated", "pk"], unique=False)

    op.create_table(
        "questionnaire_code",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("questionnaire_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("system", sa.String(length=512), nullable=False),
        sa.Column("code", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["questionnaire_pk"],
            ["questionnaire.pk"],
            name=op.f("fk_questionnaire_code_questionnaire_pk_questionnaire"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_questionnaire_code")),
    )
    with op.batch_alter_table("questionnaire_code", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_questionnaire_code_questionnaire_pk"), ["questionnaire_pk"], unique=False)
        batch_op.create_index("ix_questionnaire_code_system_code", ["code", "system"], unique=False)

    op.create_table(
        "questionnaire_response",
        sa.Column("questionnaire_url", sa.String(length=512), nullable=False),
        sa.Column("questionnaire_version", sa.String(length=64), nullable=True),
        sa.Column("questionnaire_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("subject_type", sa.String(length=64), nullable=True),
        sa.Column("subject_id", sa.String(length=128), nullable=True),
        sa.Column("author_type", sa.String(length=64), nullable=True),
        sa.Column("author_id", sa.String(length=128), nullable=True),
        sa.Column("authored_low", sa.DateTime(), nullable=True),
        sa.Column("authored_high", sa.DateTime(), nullable=True),
        sa.Column("authored_key", sa.DateTime(), nullable=False),
        sa.Column("identifier_system", sa.String(length=512), nullable=True),
        sa.Column("identifier_value", sa.String(length=256), nullable=True),
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(), nullable=False),
        sa.Column("deleted", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("resource_json", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["questionnaire_pk"],
            ["questionnaire.pk"],
            name=op.f("fk_questionnaire_response_questionnaire_pk_questionnaire"),
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_questionnaire_response")),
        sa.UniqueConstraint("id", name=op.f("uq_questionnaire_response_id")),
    )
    with op.batch_alter_table("questionnaire_response", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_questionnaire_response_author_id"), ["author_id"], unique=False)
        batch_op.create_index("ix_questionnaire_response_authored", ["authored_key", "pk"], unique=False)
        batch_op.create_index(
            "ix_questionnaire_response_identifier", ["identifier_value", "identifier_system"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_questionnaire_response_questionnaire_pk"), ["questionnaire_pk"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_questionnaire_response_status"), ["status"], unique=False)
        batch_op.create_index(
            "ix_questionnaire_response_subject_authored",
            ["subject_id", "subject_type", "authored_key", "pk"],
            unique=False,
        )
        batch_op.create_index(
            "ix_questionnaire_response_subject_questionnaire",
            ["subject_id", "subject_type", "questionnaire_url", "authored_key", "pk"],
            unique=False,
        )
        batch_op.create_index("ix_questionnaire_response_updated", ["last_updated", "pk"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("questionnaire_response", schema=None) as batch_op:
        batch_op.drop_index("ix_questionnaire_response_updated")
        batch_op.drop_index("ix_questionnaire_response_subject_questionnaire")
        batch_op.drop_index("ix_questionnaire_response_subject_authored")
        batch_op.drop_index(batch_op.f("ix_questionnaire_response_status"))
        batch_op.drop_index(batch_op.f("ix_questionnaire_response_questionnaire_pk"))
        batch_op.drop_index("ix_questionnaire_response_identifier")
        batch_op.drop_index("ix_questionnaire_response_authored")
        batch_op.drop_index(batch_op.f("ix_questionnaire_response_author_id"))

    op.drop_table("questionnaire_response")
    with op.batch_alter_table("questionnaire_code", schema=None) as batch_op:
        batch_op.drop_index("ix_questionnaire_code_system_code")
        batch_op.drop_index(batch_op.f("ix_questionnaire_code_questionnaire_pk"))

    op.drop_table("questionnaire_code")
    with op.batch_alter_table("resource_version", schema=None) as batch_op:
        batch_op.drop_index("ix_resource_version_type_updated")

    op.drop_table("resource_version")
    with op.batch_alter_table("questionnaire", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_questionnaire_canonical_live",
            postgresql_where=sa.text("NOT deleted"),
            sqlite_where=sa.text("NOT deleted"),
        )
        batch_op.drop_index(batch_op.f("ix_questionnaire_url"))
        batch_op.drop_index("ix_questionnaire_updated")
        batch_op.drop_index(batch_op.f("ix_questionnaire_title_folded"))
        batch_op.drop_index(batch_op.f("ix_questionnaire_status"))
        batch_op.drop_index(batch_op.f("ix_questionnaire_name_folded"))

    op.drop_table("questionnaire")
