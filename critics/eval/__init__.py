"""Evaluation of critics: held-out verdict accuracy (benchmarks and reports build on it)."""
