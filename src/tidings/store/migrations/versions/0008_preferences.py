"""subscription preferences: sections, topics, users' choices and their log; server secrets

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-03 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "preference_sections",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("has_custom_routing", sa.Boolean(), nullable=False),
        sa.Column("routing_options", sa.JSON(), nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.Column("creator", sa.String(length=64), nullable=True),
        sa.Column("updated", TS, nullable=False),
        sa.Column("updater", sa.String(length=64), nullable=True),
        sa.Column("archived_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_preference_sections")),
    )
    with op.batch_alter_table("preference_sections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_preference_sections_created"), ["created"], unique=False
        )
    op.create_table(
        "preference_topics",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("section_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("default_status", sa.String(length=16), nullable=False),
        sa.Column("allowed_preferences", sa.JSON(), nullable=False),
        sa.Column("include_unsubscribe_header", sa.Boolean(), nullable=False),
        sa.Column("routing_options", sa.JSON(), nullable=False),
        sa.Column("topic_data", sa.JSON(), nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.Column("creator", sa.String(length=64), nullable=True),
        sa.Column("updated", TS, nullable=False),
        sa.Column("updater", sa.String(length=64), nullable=True),
        sa.Column("archived_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["section_id"],
            ["preference_sections.id"],
            name=op.f("fk_preference_topics_section_id_preference_sections"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_preference_topics")),
    )
    with op.batch_alter_table("preference_topics", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_preference_topics_section_id"), ["section_id"], unique=False
        )
    op.create_table(
        "user_preferences",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("topic_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("has_custom_routing", sa.Boolean(), nullable=False),
        sa.Column("custom_routing", sa.JSON(), nullable=False),
        sa.Column("updated", TS, nullable=False),
        sa.PrimaryKeyConstraint("user_id", "topic_id", name=op.f("pk_user_preferences")),
    )
    op.create_table(
        "preference_logs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("topic_id", sa.String(length=64), nullable=False),
        sa.Column("topic_name", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("has_custom_routing", sa.Boolean(), nullable=False),
        sa.Column("custom_routing", sa.JSON(), nullable=False),
        sa.Column("previous", sa.JSON(), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("timestamp", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_preference_logs")),
    )
    with op.batch_alter_table("preference_logs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_preference_logs_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_preference_logs_timestamp"), ["timestamp"], unique=False
        )
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_server_secrets")),
    )


def downgrade() -> None:
    op.drop_table("server_secrets")
    with op.batch_alter_table("preference_logs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_preference_logs_timestamp"))
        batch_op.drop_index(batch_op.f("ix_preference_logs_user_id"))
    op.drop_table("preference_logs")
    op.drop_table("user_preferences")
    with op.batch_alter_table("preference_topics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_preference_topics_section_id"))
    op.drop_table("preference_topics")
    with op.batch_alter_table("preference_sections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_preference_sections_created"))
    op.drop_table("preference_sections")
