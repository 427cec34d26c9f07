"""Ingest: raw files in their published layouts -> silver.items, silver.events, ops.quarantine."""
