"""task finished index: pruning finds finished tasks by the time they last changed

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 03:40:00
"""
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.create_index('ix_task_finished', ['state', 'updated_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.drop_index('ix_task_finished')
