"""TIGER's inputs from the lakehouse and its training job (torch; reads Delta with delta-rs, no Spark).

The artifact version is `<run date>-s<semantic_ids version>-e<events version>`:
a rerun of the same date on the same tables resumes the same artifact. With
`warm_start`, training starts from the latest TIGER trained on the same
RQ-VAE version (a nightly fine-tune instead of a cold start).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import pathlib
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow.compute as pc

from models.config import TigerConfig, TigerTrainConfig
from pipelines.artifacts import ArtifactStore
from pipelines.delta import read_table_arrow
from pipelines.errors import UpstreamTableError
from pipelines.sequences import ItemIndex, SequenceData, build_sequences
from pipelines.splits import SplitConfig
from pipelines.tables import GOLD_ITEM_EMBEDDINGS, GOLD_SEMANTIC_IDS, SILVER_EVENTS, Catalog

log = logging.getLogger(__name__)

MODEL = "tiger"
WARM_START_FILE = "warm_start.pt"


@dataclass(frozen=True)
class RetrievalInputs:
    index: ItemIndex
    sequences: SequenceData
    rqvae_version: str
    table_versions: dict[str, int]


def load_retrieval_inputs(catalog: Catalog, split: SplitConfig = SplitConfig()) -> RetrievalInputs:
    ids, ids_version = read_table_arrow(catalog, GOLD_SEMANTIC_IDS.name)
    if ids.num_rows == 0:
        raise UpstreamTableError(f"{GOLD_SEMANTIC_IDS.name} is empty (version {ids_version}): "
                                 "run train-rqvae and assign-semantic-ids first")
    versions = sorted(set(ids.column("rqvae_version").to_pylist()))
    if len(versions) != 1:
        raise UpstreamTableError(f"{GOLD_SEMANTIC_IDS.name} mixes RQ-VAE versions {versions}; rerun assign-semantic-ids")
    events, events_version = read_table_arrow(catalog, SILVER_EVENTS.name, columns=["user_id", "item_id", "ts"])
    if events.num_rows == 0:
        raise UpstreamTableError(f"{SILVER_EVENTS.name} is empty (version {events_version}): run ingest first")
    index = ItemIndex.from_semantic_ids(ids.to_pandas())
    sequences = build_sequences(events.to_pandas(), index, split)
    log.info("%d items with semantic IDs (RQ-VAE %s); %s", len(index.item_ids), versions[0], sequences.stats)
    return RetrievalInputs(index, sequences, versions[0],
                           {GOLD_SEMANTIC_IDS.name: ids_version, SILVER_EVENTS.name: events_version})


def item_vectors_by_row(catalog: Catalog, inputs: RetrievalInputs) -> np.ndarray:
    """gold.item_embeddings aligned to the item rows; items without a vector get zeros (never a neighbour)."""
    table, _ = read_table_arrow(catalog, GOLD_ITEM_EMBEDDINGS.name, columns=["item_id", "embedding"])
    dim = int(pc.max(pc.list_value_length(table.column("embedding"))).as_py() or 0)
    vectors = np.zeros((len(inputs.index.item_ids), dim), dtype=np.float32)
    rows = inputs.index.rows(table.column("item_id").to_numpy(zero_copy_only=False))
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


@dataclass(frozen=True)
class TrainTigerJobConfig:
    run_date: dt.date
    model: TigerConfig = field(default_factory=TigerConfig)
    train: TigerTrainConfig = field(default_factory=TigerTrainConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    version: str | None = None
    warm_start: bool = False  # start from the latest TIGER trained on the same RQ-VAE version


def _warm_start_weights(store: ArtifactStore, rqvae_version: str, config: TigerConfig) -> pathlib.Path | None:
    from models.tiger_training import BEST_FILE

    latest = store.latest_version(MODEL)
    if latest is None:
        return None
    card = store.verify(MODEL, latest)
    if card.get("rqvae_version") != rqvae_version or card["config"]["model"] != dataclasses.asdict(config):
        log.info("no warm start: the latest TIGER %s used other IDs or another architecture", latest)
        return None
    return store.directory(MODEL, latest) / BEST_FILE


def run_train_tiger(catalog: Catalog, store: ArtifactStore, config: TrainTigerJobConfig) -> dict[str, object]:
    import shutil

    from models.rqvae import default_device
    from models.tiger import count_parameters
    from models.tiger_training import BEST_FILE, CHECKPOINT_FILE, Sequences, train_tiger

    inputs = load_retrieval_inputs(catalog, config.split)
    model_config = dataclasses.replace(config.model, max_history=config.split.max_history)
    check_codebook(model_config, inputs.index)
    data = inputs.sequences
    if len(data.train) == 0:
        raise UpstreamTableError(f"{SILVER_EVENTS.name} gives no training examples (users need 2+ training events)")
    version = config.version or (
        f"{config.run_date:%Y%m%d}-s{inputs.table_versions[GOLD_SEMANTIC_IDS.name]}"
        f"-e{inputs.table_versions[SILVER_EVENTS.name]}"
    )
    directory = store.directory(MODEL, version)
    warm = _warm_start_weights(store, inputs.rqvae_version, model_config) if config.warm_start else None
    warm_file = directory / WARM_START_FILE
    if warm is not None and warm.parent != directory and not (directory / CHECKPOINT_FILE).exists():
        directory.mkdir(parents=True, exist_ok=True)
        log.info("warm start from %s", warm)
        shutil.copy(warm, warm_file)  # kept with the artifact: the run can be replayed

    started = time.perf_counter()
    model, state = train_tiger(
        inputs.index.codes,
        Sequences(data.train.users, data.train.histories, data.train.targets),
        Sequences(data.valid.users, data.valid.histories, data.valid.targets),
        model_config, config.train, directory=directory,
        initial_weights=warm_file if warm_file.exists() else None,
    )
    seconds = time.perf_counter() - started
    epochs = state.history
    metrics: dict[str, float] = {
        "best_valid_recall@10": state.best_recall, "best_epoch": state.best_epoch,
        "epochs": state.epoch, "steps": state.step, "train_seconds": seconds,
        "examples_per_s": float(np.mean([e["examples_per_s"] for e in epochs])) if epochs else 0.0,
        **data.stats,
    }
    card = {
        "config": {"model": dataclasses.asdict(model_config), "train": dataclasses.asdict(config.train),
                   "split": dataclasses.asdict(config.split)},
        "data": inputs.table_versions,
        "rqvae_version": inputs.rqvae_version,
        "run_date": config.run_date.isoformat(),
        "device": str(default_device(config.train.device)),
        "parameters": count_parameters(model),
        "weights": BEST_FILE,
        "warm_start": str(warm) if warm else None,
        "metrics": metrics,
        "history": epochs,
    }
    store.write_card(MODEL, version, card)
    return {"version": version, "directory": str(directory), **metrics}
