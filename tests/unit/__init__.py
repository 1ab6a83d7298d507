"""Pure rules, renderers and parsers: no database, no network."""
