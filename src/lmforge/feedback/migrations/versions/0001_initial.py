"""initial feedback schema: users, sessions, batches, items, responses, assignments, labels, ratings

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

CRITERIA = ("accuracy", "relevance", "coherence", "harmlessness", "honesty")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.CheckConstraint("kind IN ('human', 'ai', 'simulated', 'imported')", name="ck_users_kind"),
        sa.CheckConstraint("role IN ('labeler', 'admin')", name="ck_users_role"),
    )
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_table(
        "batches",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("model", sa.String(512), nullable=True),
        sa.Column("sampling", sa.JSON, nullable=False),
        sa.Column("source", sa.String(1024), nullable=True),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("batch_id", sa.Integer, sa.ForeignKey("batches.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("prompt", sa.JSON, nullable=False),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.UniqueConstraint("batch_id", "key", name="uq_items_batch_key"),
    )
    op.create_index("ix_items_batch_id", "items", ["batch_id"])
    op.create_table(
        "responses",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.UniqueConstraint("item_id", "position", name="uq_responses_item_position"),
    )
    op.create_index("ix_responses_item_id", "responses", ["item_id"])
    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("opened_at", sa.DateTime, nullable=True),
        sa.UniqueConstraint("item_id", "user_id", name="uq_assignments_item_user"),
    )
    op.create_index("ix_assignments_item_id", "assignments", ["item_id"])
    op.create_index("ix_assignments_user_id", "assignments", ["user_id"])
    op.create_table(
        "labels",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("assignment_id", sa.Integer, sa.ForeignKey("assignments.id", ondelete="CASCADE"),
                  nullable=False, unique=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("rewrite", sa.Text, nullable=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "ratings",
        sa.Column("label_id", sa.Integer, sa.ForeignKey("labels.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("response_id", sa.Integer, sa.ForeignKey("responses.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("unsafe", sa.Boolean, nullable=False),
        *(sa.Column(c, sa.Integer, nullable=True) for c in CRITERIA),
        sa.CheckConstraint("rank >= 0", name="ck_ratings_rank"),
        *(sa.CheckConstraint(f"{c} BETWEEN 1 AND 7", name=f"ck_ratings_{c}") for c in CRITERIA),
    )


def downgrade() -> None:
    for table in ("ratings", "labels", "assignments", "responses", "items", "batches", "web_sessions", "users"):
        op.drop_table(table)
