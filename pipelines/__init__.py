"""Spark and Delta side of tigertwin: session, table catalog, Delta I/O, ingest and the batch jobs' logic."""
