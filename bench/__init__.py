"""Benchmarks and the simulated vLLM backend used by tests, benchmarks and `make run`.

Nothing here is imported by proxy/ or translate/.
"""
