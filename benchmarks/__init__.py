"""Benchmarks: commands that measure Cowork and print JSON (`python -m benchmarks.<name>`).

Speed is measured here, never in timed tests. Quote a figure with the machine it
was measured on (cores, and whether other work shared them).
"""
