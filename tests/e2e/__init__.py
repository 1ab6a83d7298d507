"""Whole flows through the HTTP endpoints, the production layouts, a real browser, fuzzing."""
