"""TIGER's inputs from the lakehouse: the item index, every role's sequences, item vectors (delta-rs, no Spark)."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

import numpy as np
import pyarrow.compute as pc

from models.config import TigerConfig
from pipelines.errors import UpstreamTableError
from pipelines.lakehouse.catalog import (
    GOLD_ITEM_EMBEDDINGS,
    GOLD_SEMANTIC_IDS,
    SILVER_EVENTS,
    Catalog,
)
from pipelines.lakehouse.table_io import read_table_arrow
from pipelines.retrieval.sequences import ItemIndex, SequenceData, build_sequences
from pipelines.splits import SEQUENCE_COLUMNS, SplitConfig

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class RetrievalInputs:
    index: ItemIndex
    sequences: SequenceData
    rqvae_version: str
    table_versions: dict[str, int]
    catalog: Catalog | None = field(default=None, compare=False, repr=False)

    @functools.cached_property
    def item_vectors(self) -> np.ndarray | None:
        """gold.item_embeddings (latest) aligned to the index rows, read on first use (TIGER's dense head)."""
        return None if self.catalog is None else item_vectors_by_row(self.catalog, self.index)


def load_retrieval_inputs(catalog: Catalog, split: SplitConfig = SplitConfig()) -> RetrievalInputs:
    ids, ids_version = read_table_arrow(catalog, GOLD_SEMANTIC_IDS.name)
    if ids.num_rows == 0:
        raise UpstreamTableError(f"{GOLD_SEMANTIC_IDS.name} is empty (version {ids_version}): "
                                 "run train-rqvae and assign-semantic-ids first")
    versions = sorted(set(ids.column("rqvae_version").to_pylist()))
    if len(versions) != 1:
        raise UpstreamTableError(f"{GOLD_SEMANTIC_IDS.name} mixes RQ-VAE versions {versions}; rerun assign-semantic-ids")
    events, events_version = read_table_arrow(catalog, SILVER_EVENTS.name, columns=list(SEQUENCE_COLUMNS))
    if events.num_rows == 0:
        raise UpstreamTableError(f"{SILVER_EVENTS.name} is empty (version {events_version}): run ingest first")
    index = ItemIndex.from_semantic_ids(ids.to_pandas())
    sequences = build_sequences(events.to_pandas(), index, split)
    log.info("%d items with semantic IDs (RQ-VAE %s); %s", len(index.item_ids), versions[0], sequences.stats)
    return RetrievalInputs(index, sequences, versions[0],
                           {GOLD_SEMANTIC_IDS.name: ids_version, SILVER_EVENTS.name: events_version}, catalog)


def item_vectors_by_row(catalog: Catalog, index: ItemIndex, version: int | None = None) -> np.ndarray:
    """gold.item_embeddings (at `version`; None: the latest) aligned to the item rows of `index`; items without
    a vector get zeros (never a neighbour)."""
    table, _ = read_table_arrow(catalog, GOLD_ITEM_EMBEDDINGS.name, columns=["item_id", "embedding"], version=version)
    dim = int(pc.max(pc.list_value_length(table.column("embedding"))).as_py() or 0)
    vectors = np.zeros((len(index.item_ids), dim), dtype=np.float32)
    rows = index.rows(table.column("item_id").to_numpy(zero_copy_only=False))
    flat = pc.list_flatten(table.column("embedding")).to_numpy().reshape(table.num_rows, dim)
    vectors[rows[rows >= 0]] = flat[rows >= 0]
    return vectors


def check_codebook(config: TigerConfig, index: ItemIndex) -> None:
    levels, largest = index.codes.shape[1], int(index.codes.max())
    if levels != config.levels or largest >= config.codebook_size:
        raise UpstreamTableError(
            f"{GOLD_SEMANTIC_IDS.name} has {levels} tokens per item with codes up to {largest}; the TIGER config "
            f"expects {config.levels} tokens below {config.codebook_size}"
        )


def events_of(catalog: Catalog, inputs: RetrievalInputs):
    """silver.events (the sequence columns) at the version `inputs` were read at, as pandas."""
    events, _ = read_table_arrow(catalog, SILVER_EVENTS.name, columns=list(SEQUENCE_COLUMNS),
                                 version=inputs.table_versions[SILVER_EVENTS.name])
    return events.to_pandas()


def sequences_at_width(catalog: Catalog, inputs: RetrievalInputs, width: int) -> SequenceData:
    """The same split as `inputs` (same events version, same item rows) with histories `width` items wide
    (SASRec reads 50, TIGER 20); `inputs.sequences` itself when it is that wide already."""
    if inputs.sequences.train.histories.shape[1] == width:
        return inputs.sequences
    return build_sequences(events_of(catalog, inputs), inputs.index, SplitConfig(max_history=width))
