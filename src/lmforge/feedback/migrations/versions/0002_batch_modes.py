"""batch modes: batches.mode (what labelers give per prompt), ratings.overall and ratings.good

Existing batches keep what they asked for until now (rank+criteria: a ranking and five criterion scores).
The 1-7 range of ``overall`` is checked where labels are checked (LabelIn.check), like the other scores'
application-side messages; SQLite cannot add a CHECK constraint to an existing table without rebuilding it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("batches", sa.Column("mode", sa.String(16), nullable=False, server_default="rank+criteria"))
    op.add_column("ratings", sa.Column("overall", sa.Integer, nullable=True))
    op.add_column("ratings", sa.Column("good", sa.Boolean, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ratings") as b:
        b.drop_column("good")
        b.drop_column("overall")
    with op.batch_alter_table("batches") as b:
        b.drop_column("mode")
