"""token use: CDS client JWTs remembered by jti until they expire (no replay)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "token_use",
        sa.Column("issuer", sa.String(length=512), nullable=False),
        sa.Column("jti", sa.String(length=256), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("issuer", "jti", name=op.f("pk_token_use")),
    )
    with op.batch_alter_table("token_use", schema=None) as batch_op:
        batch_op.create_index("ix_token_use_expires", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("token_use", schema=None) as batch_op:
        batch_op.drop_index("ix_token_use_expires")
    op.drop_table("token_use")
