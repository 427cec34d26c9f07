"""Item-side settings the DAGs and jobs share (no heavy imports: DAG files read these for their Params)."""

from __future__ import annotations

from typing import Literal

# text: item content; als: collaborative (from events); concat: both side by side
EmbeddingSource = Literal["text", "als", "concat"]
SOURCES: tuple[EmbeddingSource, ...] = ("text", "als", "concat")
DEFAULT_SOURCE: EmbeddingSource = "text"

# A new RQ-VAE is trained when more than this share of the items is new to the current one: their IDs
# come from a model that never saw them (cold start works, but codes drift from the content).
RETRAIN_NEW_ITEM_SHARE = 0.2
