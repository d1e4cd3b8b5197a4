"""red-team attempts: attacks people type on the web app's red-team page, the model's answers, their verdicts

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "redteam_attempts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("model", sa.String(512), nullable=False),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("verdict", sa.String(8), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("better", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("marked_at", sa.DateTime, nullable=True),
        sa.CheckConstraint("verdict IN ('broke', 'held')", name="ck_redteam_attempts_verdict"),
    )
    op.create_index("ix_redteam_attempts_user_id", "redteam_attempts", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_redteam_attempts_user_id", "redteam_attempts")
    op.drop_table("redteam_attempts")
