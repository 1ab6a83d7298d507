"""Cowork: the durable task runner."""
