"""Benchmarks: run ``python bench/serve_bench.py``."""
