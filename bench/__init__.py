"""Benchmarks: run with `make bench` (python -m bench). Figures go in the README."""
