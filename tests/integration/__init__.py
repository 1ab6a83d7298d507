"""Parts together on real SQLite/PostgreSQL and loopback HTTP fakes."""
