"""Human (and AI, and simulated) feedback: a labeling database, a web app, import and export.

- :mod:`.db` tables and engine (SQLite WAL by default, PostgreSQL by URL); :mod:`.migrate` Alembic migrations
- :mod:`.store` the transactional API every labeler (human, judge, simulated) writes through
- :mod:`.batchfile` the ``batch.jsonl`` written by ``lmforge generate``
- :mod:`.export` / :mod:`.importers` preference data in and out (:mod:`lmforge.data.preference`)
- :mod:`.agreement` / :mod:`.stats` Kendall's tau, Krippendorff's alpha, throughput
- :mod:`.simulate` the built-in world's simulated labeler as labeler accounts
- :mod:`.webapp` the labeling web app
"""
