"""The conversation: messages become commands or tasks, clicks become decisions, neutral
cards, the delivery loop, chat reads and post-target checks lent to skills. Imports `adapters`
(the neutral model) and `tasks`."""
