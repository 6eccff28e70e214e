"""Load tests and benchmarks: a local fleet like the platform, a single-process baseline, Locust."""
