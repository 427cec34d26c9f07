"""Torch-only models (no Spark, no Airflow)."""
