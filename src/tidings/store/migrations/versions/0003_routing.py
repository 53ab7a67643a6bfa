"""routing strategies, the workspace default strategy, a message's frozen route

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "routing_strategies",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=True),
        sa.Column("routing", sa.JSON(), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("providers", sa.JSON(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=True),
        sa.Column("creator", sa.String(length=64), nullable=False),
        sa.Column("updater", sa.String(length=64), nullable=True),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_strategies")),
    )
    with op.batch_alter_table("routing_strategies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_routing_strategies_created"), ["created"], unique=False
        )
    op.create_table(
        "routing_default",
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("strategy_id", sa.String(length=64), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["strategy_id"],
            ["routing_strategies.id"],
            name=op.f("fk_routing_default_strategy_id_routing_strategies"),
        ),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_routing_default")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("route", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("route_step", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("route_step")
        batch_op.drop_column("route")
    op.drop_table("routing_default")
    with op.batch_alter_table("routing_strategies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_routing_strategies_created"))
    op.drop_table("routing_strategies")
