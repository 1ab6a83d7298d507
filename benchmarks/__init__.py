"""Benchmarks: commands that measure and print JSON (`python -m benchmarks.NAME`).
Figures are quoted in docs/performance.md with the machine they ran on."""
