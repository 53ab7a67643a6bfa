"""Persistence: tables, queries and Alembic migrations (SQLAlchemy Core; SQLite and PostgreSQL)."""
