"""gold.item_embeddings -> a trained RQ-VAE under artifacts/rqvae/<version>/ (no Spark: torch reads Arrow).

The version defaults to `<run date>-e<embeddings table version>`, so a rerun
of the same date on the same data resumes (or simply reloads) the same
artifact instead of training a second one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from models.config import RQVAEConfig, RQVAETrainConfig
from pipelines.items.semantic_ids import code_metrics, code_usage
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.lakehouse.catalog import GOLD_ITEM_EMBEDDINGS, Catalog
from pipelines.lakehouse.table_io import read_table_arrow
from pipelines.plots import plot_code_usage

log = logging.getLogger(__name__)

MODEL = "rqvae"
CHECKPOINT_FILE = "checkpoint.pt"
TRAINED_ITEMS_FILE = "trained_items.parquet"
USAGE_PLOT_FILE = "code_usage.png"


@dataclass(frozen=True)
class ItemVectors:
    item_ids: np.ndarray  # object array of str
    vectors: np.ndarray  # [N, d] float32
    table_version: int
    source: str
    model: str


def load_item_vectors(catalog: Catalog) -> ItemVectors:
    table, version = read_table_arrow(catalog, GOLD_ITEM_EMBEDDINGS.name)
    if table.num_rows == 0:
        raise ValueError(f"{GOLD_ITEM_EMBEDDINGS.name} is empty at version {version}: run embed-items first")
    table = table.sort_by("item_id")
    lengths = pc.unique(pc.list_value_length(table.column("embedding"))).to_pylist()
    if len(lengths) != 1:
        raise ValueError(f"{GOLD_ITEM_EMBEDDINGS.name}.embedding has mixed lengths {sorted(lengths)}")
    flat = pc.list_flatten(table.column("embedding")).to_numpy().astype(np.float32)
    sources = pc.unique(table.column("source")).to_pylist()
    models = pc.unique(table.column("model")).to_pylist()
    return ItemVectors(
        item_ids=table.column("item_id").to_numpy(zero_copy_only=False),
        vectors=flat.reshape(table.num_rows, lengths[0]),
        table_version=version, source=",".join(sorted(sources)), model=",".join(sorted(models)),
    )


@dataclass(frozen=True)
class TrainRQVAEJobConfig:
    run_date: dt.date
    model: RQVAEConfig = field(default_factory=RQVAEConfig)  # input_dim is taken from the embeddings
    train: RQVAETrainConfig = field(default_factory=RQVAETrainConfig)
    version: str | None = None


def default_version(run_date: dt.date, embeddings_version: int) -> str:
    return f"{run_date:%Y%m%d}-e{embeddings_version}"


def run_train_rqvae(catalog: Catalog, store: ArtifactStore, config: TrainRQVAEJobConfig) -> dict[str, object]:
    from models.device import default_device
    from models.rqvae import encode_codes, reconstruction_loss, save_rqvae, train_rqvae

    items = load_item_vectors(catalog)
    train = config.train
    version = config.version or default_version(config.run_date, items.table_version)
    directory = store.directory(MODEL, version)
    model_config = dataclasses.replace(config.model, input_dim=items.vectors.shape[1])
    log.info("training RQ-VAE %s on %d items (%s, %d-d) on %s", version, len(items.item_ids),
             items.source, items.vectors.shape[1], default_device(train.device))
    started = time.perf_counter()
    model, state = train_rqvae(items.vectors, model_config, train, checkpoint=directory / CHECKPOINT_FILE)
    seconds = time.perf_counter() - started
    save_rqvae(model, train, directory)
    pq.write_table(pa.table({"item_id": items.item_ids.astype(str)}), directory / TRAINED_ITEMS_FILE)

    codes = encode_codes(model, items.vectors, train.normalize_inputs)
    metrics: dict[str, float] = code_metrics(codes, model_config.codebook_size)
    metrics["reconstruction_loss"] = reconstruction_loss(model, items.vectors, train.normalize_inputs)
    metrics["train_seconds"] = seconds
    plot = plot_code_usage(code_usage(codes, model_config.codebook_size), directory / USAGE_PLOT_FILE,
                           f"RQ-VAE {version}: items per code ({len(codes):,} items)")
    card = {
        "config": {"model": dataclasses.asdict(model_config), "train": dataclasses.asdict(train)},
        "data": {GOLD_ITEM_EMBEDDINGS.name: {"version": items.table_version, "source": items.source,
                                             "model": items.model, "items": len(items.item_ids)}},
        "run_date": config.run_date.isoformat(),
        "device": str(default_device(train.device)),
        "epochs_trained": state.epoch,
        "metrics": metrics,
        "plots": [plot],
    }
    store.write_card(MODEL, version, card)
    log.info("RQ-VAE %s: utilisation per level %s, unique 3-code fraction %.3f", version,
             [round(metrics[f"level{i}_utilization"], 3) for i in range(model_config.levels)],
             metrics["unique_3code_fraction"])
    return {"version": version, "directory": str(directory), **metrics}


def new_item_share(store: ArtifactStore, version: str, current_item_ids: np.ndarray) -> float:
    """Share of today's items the model `version` was not trained on (the retrain trigger)."""
    trained = pq.read_table(store.directory(MODEL, version) / TRAINED_ITEMS_FILE).column("item_id").to_numpy(
        zero_copy_only=False
    )
    if len(current_item_ids) == 0:
        return 0.0
    return float(np.isin(current_item_ids, trained, invert=True).mean())


def retrain_decision(catalog: Catalog, store: ArtifactStore, force: bool, threshold: float) -> tuple[bool, str]:
    """Should tonight train a new RQ-VAE? Yes when asked, when none exists, when the embeddings changed
    shape or source, or when the share of items the model never saw passes `threshold`."""
    if force:
        return True, "asked by the run's parameters"
    version = store.latest_version(MODEL)
    if version is None:
        return True, "no RQ-VAE trained yet"
    table, _ = read_table_arrow(catalog, GOLD_ITEM_EMBEDDINGS.name, columns=["item_id", "source", "model"])
    card = store.read_card(MODEL, version)
    trained_on = card["data"][GOLD_ITEM_EMBEDDINGS.name]
    now = ",".join(sorted(pc.unique(table.column("source")).to_pylist()))
    if now != trained_on["source"]:
        return True, f"embedding source changed ({trained_on['source']} -> {now})"
    share = new_item_share(store, version, table.column("item_id").to_numpy(zero_copy_only=False))
    if share > threshold:
        return True, f"{share:.1%} of items are new since RQ-VAE {version} (threshold {threshold:.0%})"
    return False, f"{share:.1%} new items since RQ-VAE {version}: new items get IDs from the current model"
