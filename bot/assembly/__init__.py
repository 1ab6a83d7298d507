"""The composition root: settings and the `Runtime` that builds the database, store, engine,
skills, planner and delivery for a process. Imports `bot.application` and `tasks`."""
