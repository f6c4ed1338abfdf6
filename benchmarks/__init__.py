"""Benchmarks of airflow-provider-camb against the local CAMB stand-in: ``python -m benchmarks.run``."""
