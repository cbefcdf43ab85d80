"""Delivery: webhook target options, per-call outbox lanes and expiry, export index.

``webhook_targets.options`` holds what ``sipscribe.delivery.targets.TargetOptions`` validates
(payload format, realtime policy, timeout, authentication, TLS). ``deliveries.call_id`` lets the
delivery service keep one call's deliveries to one target in order across restarts, and
``deliveries.expires_at`` is when a pending entry stops being retried (dead letter).
``ix_utterances_created`` serves the batch export's keyset walk over ``(created_at, id)``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-20
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_targets") as batch:
        batch.add_column(sa.Column("options", sa.JSON(), server_default="{}", nullable=False))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("call_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index(batch.f("ix_deliveries_call_id"), ["call_id"], unique=False)
    op.create_index("ix_utterances_created", "utterances", ["created_at", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_utterances_created", table_name="utterances")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index(batch.f("ix_deliveries_call_id"))
        batch.drop_column("expires_at")
        batch.drop_column("call_id")
    with op.batch_alter_table("webhook_targets") as batch:
        batch.drop_column("options")
