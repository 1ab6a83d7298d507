"""Cowork: the bot layer."""
