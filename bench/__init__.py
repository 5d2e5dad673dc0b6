"""Benchmarks (python -m bench). Never part of the test suite's pass/fail."""
