"""Alembic revisions of the results database (run by bench/store/migrate.py)."""
