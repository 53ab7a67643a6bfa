"""lists, list subscriptions, the list a message went through, send requests; a message's
tenant and archive time

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lists",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("preferences", sa.JSON(), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lists")),
    )
    op.create_table(
        "list_subscriptions",
        sa.Column("list_id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=256), nullable=False),
        sa.Column("preferences", sa.JSON(), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["lists.id"],
            name=op.f("fk_list_subscriptions_list_id_lists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("list_id", "user_id", name=op.f("pk_list_subscriptions")),
    )
    with op.batch_alter_table("list_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_list_subscriptions_user_id"), ["user_id"], unique=False
        )
    op.create_table(
        "message_lists",
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("list_id", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_lists_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "list_id", name=op.f("pk_message_lists")),
    )
    with op.batch_alter_table("message_lists", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_message_lists_list_id"), ["list_id"], unique=False)
    op.create_table(
        "send_requests",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_send_requests")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tenant_id", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_messages_tenant", ["tenant_id", "enqueued"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_tenant")
        batch_op.drop_column("archived_at")
        batch_op.drop_column("tenant_id")
    op.drop_table("send_requests")
    with op.batch_alter_table("message_lists", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_lists_list_id"))
    op.drop_table("message_lists")
    with op.batch_alter_table("list_subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_list_subscriptions_user_id"))
    op.drop_table("list_subscriptions")
    op.drop_table("lists")
