"""Persistence: the tables, the connection with group commit, statements, the engine's
writes (checkpoints), the outbox, the leadership lease, the console transcript, schema and
migrations, pruning. Imports `tasks.rules` and the skill contract (`tasks.skills.base`)."""
