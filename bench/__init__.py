"""ingestd benchmarks: ``python -m bench [NAME...] [--quick]``."""
