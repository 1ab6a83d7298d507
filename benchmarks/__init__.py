"""Benchmarks, one command each printing JSON (`python -m benchmarks.engine`, ...). Not shipped
in the package; `cowork bench` runs the engine one when the folder is there."""
