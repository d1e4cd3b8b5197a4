"""login epochs: users.epoch goes up when a password changes or a user is deactivated; a web session keeps the
epoch it was opened at and ends when the two differ

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("epoch", sa.Integer, nullable=False, server_default="0"))
    op.add_column("web_sessions", sa.Column("epoch", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("web_sessions") as batch:
        batch.drop_column("epoch")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("epoch")
