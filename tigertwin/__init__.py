"""tigertwin for notebooks: `from tigertwin import lakehouse` (read-only SQL over the Delta tables)."""
