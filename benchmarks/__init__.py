"""Benchmarks for rootserve: the driver is `benchmarks/run.py` (`make bench`)."""
