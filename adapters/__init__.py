"""Cowork: platform adapters and the neutral chat model."""
