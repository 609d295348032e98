"""Benchmarks of rebill against the local sandbox; see docs/benchmarks.md.

Each one runs from the repository root as `python -m bench.NAME` and prints its
figures. None runs in CI.
"""
