"""Alembic environment: runs on a connection handed over by tidings.store.migrate."""

from __future__ import annotations

from alembic import context

from tidings.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - Tidings always hands one over
    raise RuntimeError("run migrations through `tidings db upgrade`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
