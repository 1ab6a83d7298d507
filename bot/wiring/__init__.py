"""Mounting a platform: its endpoint and adapter from the settings (Slack, Teams, console), or
only its client for a worker process. Imports `adapters`, `bot.assembly` and `bot.application`."""
