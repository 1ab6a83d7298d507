"""chat message updated index: console pages of every web process follow the transcript

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 15:05:00
"""
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('chat_message', schema=None) as batch_op:
        batch_op.create_index('ix_chat_message_updated', ['platform', 'updated_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('chat_message', schema=None) as batch_op:
        batch_op.drop_index('ix_chat_message_updated')
