"""Alembic environment for the feedback store; run programmatically by :mod:`lmforge.feedback.migrate`.

The caller passes an open connection in ``config.attributes["connection"]``; there is no alembic.ini.
"""
from __future__ import annotations

from alembic import context

from lmforge.feedback.db import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
with context.begin_transaction():
    context.run_migrations()
