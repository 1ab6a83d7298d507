"""Operating Cowork: the `cowork` command, doctor, reports, logs, retention commands and the
Teams app package. May import every other room of `bot`."""
