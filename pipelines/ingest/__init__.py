"""Ingest: raw files in their published layouts -> silver.items, silver.events, ops.quarantine.

formats.py (one parser per layout), records.py (typed rows, bad-row reasons),
reader.py (files read as text, row by row), pipeline.py (the Spark job),
synthetic.py (a generator with realistic structure for demos and tests).
"""

from pipelines.lazy_exports import lazy_exports

_EXPORTS = {
    "IngestConfig": "pipeline",
    "IngestReport": "pipeline",
    "run_ingest": "pipeline",
    "SynthConfig": "synthetic",
    "generate": "synthetic",
    "write_raw": "synthetic",
    "synthetic_item_embeddings": "synthetic",
    "FORMATS": "formats",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
