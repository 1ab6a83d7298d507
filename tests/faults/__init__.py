"""Process-level fault harness: real `cowork` processes on loopback, killed,
starved and lied to, with the books checked afterwards.

`python -m tests.faults crash|scaleout|faults ...` runs the long versions and
prints JSON counts; the tests (tests/faults/test_crash.py, test_scaleout.py,
test_faults.py) run short versions of the same scenarios.
"""
