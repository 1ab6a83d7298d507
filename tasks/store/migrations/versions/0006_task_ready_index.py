"""task ready index: claims read runnable tasks in order from a partial index

The claim asks for claimable tasks (planning, queued, running) due by now, in
(run_after, id) order. `ix_task_runnable` (state, run_after) could not serve the
three states and that order together, so every claim read and sorted the whole
backlog. `ix_task_ready` holds only claimable tasks, in claim order.
`ix_task_finished` now holds only finished tasks (what pruning reads), so a
claim is never led through it. A claimable task with no run_after (due now)
gets its last change's time, since the claim asks for run_after <= now.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 09:10:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# tasks.models.READY and FINISHED, as of this revision
READY = "state IN ('planning', 'queued', 'running')"
FINISHED = "state IN ('cancelled', 'expired', 'failed', 'succeeded')"


def upgrade() -> None:
    op.execute(f"UPDATE task SET run_after = updated_at WHERE run_after IS NULL AND {READY}")
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.drop_index('ix_task_runnable')
        batch_op.drop_index('ix_task_finished')
    op.create_index('ix_task_ready', 'task', ['run_after', 'id'], unique=False,
                    postgresql_where=sa.text(READY), sqlite_where=sa.text(READY))
    op.create_index('ix_task_finished', 'task', ['state', 'updated_at'], unique=False,
                    postgresql_where=sa.text(FINISHED), sqlite_where=sa.text(FINISHED))


def downgrade() -> None:
    op.drop_index('ix_task_ready', table_name='task')
    op.drop_index('ix_task_finished', table_name='task')
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.create_index('ix_task_runnable', ['state', 'run_after'], unique=False)
        batch_op.create_index('ix_task_finished', ['state', 'updated_at'], unique=False)
