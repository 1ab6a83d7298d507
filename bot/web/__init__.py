"""The HTTP side of a web process: one aiohttp app, health and metrics, request logging.
Imports `bot.assembly` and the wiring it mounts."""
