"""TIGER's training job: gold.semantic_ids + silver.events -> artifacts/tiger/<version>/ (torch, no Spark).

The artifact version is `<run date>-s<semantic_ids version>-e<events version>`:
a rerun of the same date on the same tables resumes the same artifact. With
`warm_start`, training starts from the latest TIGER trained on the same
RQ-VAE version (a nightly fine-tune instead of a cold start).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import pathlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.config import TigerConfig, TigerTrainConfig
from models.examples import Examples
from pipelines.errors import UpstreamTableError
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.lakehouse.catalog import (
    GOLD_ITEM_EMBEDDINGS,
    GOLD_SEMANTIC_IDS,
    SILVER_EVENTS,
    Catalog,
)
from pipelines.retrieval.inputs import RetrievalInputs, check_codebook, load_retrieval_inputs
from pipelines.retrieval.retriever import FitContext
from pipelines.retrieval.serving import MODEL
from pipelines.splits import SplitConfig

log = logging.getLogger(__name__)

WARM_START_FILE = "warm_start.pt"
SERVING_FILE = "serving.pt"


@dataclass(frozen=True)
class TrainTigerJobConfig:
    run_date: dt.date
    model: TigerConfig = field(default_factory=TigerConfig)
    train: TigerTrainConfig = field(default_factory=TigerTrainConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    version: str | None = None
    warm_start: bool = False  # start from the latest TIGER trained on the same RQ-VAE version
    # After selection, train serving weights on every event for the chosen epochs (tonight's model sees each
    # user's latest events; evaluation and gates keep the held-out weights).
    refit: bool = False
    processes: int = 1  # data-parallel training processes through TorchDistributor (pipelines/training_processes.py)


def _warm_start_weights(store: ArtifactStore, rqvae_version: str, config: TigerConfig) -> pathlib.Path | None:
    from models.tiger_training import BEST_FILE

    latest = store.latest_version(MODEL)
    if latest is None:
        return None
    card = store.verify(MODEL, latest)
    # filled with today's defaults: a card written before a field existed (causal_encoder) had its default
    trained = {**dataclasses.asdict(TigerConfig()), **card["config"]["model"]}
    if card.get("rqvae_version") != rqvae_version or trained != dataclasses.asdict(config):
        log.info("no warm start: the latest TIGER %s used other IDs or another architecture", latest)
        return None
    return store.directory(MODEL, latest) / BEST_FILE


def run_train_tiger(catalog: Catalog, store: ArtifactStore, config: TrainTigerJobConfig,
                    inputs: RetrievalInputs | None = None, promote: bool = True) -> dict[str, object]:
    from models.tiger_training import BEST_FILE, train_tiger
    from pipelines.training_processes import in_processes

    if inputs is None or inputs.sequences.train.histories.shape[1] != config.split.max_history:
        inputs = load_retrieval_inputs(catalog, config.split)
    model_config = dataclasses.replace(config.model, max_history=config.split.max_history)
    check_codebook(model_config, inputs.index)
    data = inputs.sequences
    dense = None
    if model_config.dense_head:
        dense = dense_inputs(inputs, data.train)
        model_config = dataclasses.replace(model_config, item_vector_dim=dense.item_vectors.shape[1])
    if len(data.train) == 0:
        raise UpstreamTableError(f"{SILVER_EVENTS.name} gives no training examples (users need 2+ training events)")
    version = config.version or (
        f"{config.run_date:%Y%m%d}-s{inputs.table_versions[GOLD_SEMANTIC_IDS.name]}"
        f"-e{inputs.table_versions[SILVER_EVENTS.name]}"
    )
    directory = store.directory(MODEL, version)
    warm, initial_weights = (_stage_warm_start(store, inputs.rqvae_version, model_config, directory)
                             if config.warm_start else (None, None))
    started = time.perf_counter()
    model, state = in_processes(functools.partial(
        train_tiger, inputs.index.codes, data.train, data.valid, model_config, config.train, directory=directory,
        initial_weights=initial_weights, valid_seen=data.seen("valid"), dense=dense), config.processes,
        config.train.device)
    card = _model_card(config, model_config, inputs, model, state, time.perf_counter() - started, warm)
    # every item with an ID that no example of these weights held is a cold item at serving (models.cold_start)
    card["trained_items"] = {BEST_FILE: _write_trained_items(directory, BEST_FILE, inputs, data.train)}
    if dense is not None:
        card["dense"] = {"beam_weight": state.beam_weight, "cold_items": int(len(dense.cold_items))}
    if config.refit:
        card["serving_weights"] = SERVING_FILE
        card["refit"] = _refit(catalog, config, model_config, inputs, state.best_epoch, directory,
                               card["trained_items"], with_head=dense is not None)
    store.write_card(MODEL, version, card, promote=promote)
    return {"version": version, "directory": str(directory), **card["metrics"]}


def _refit(catalog: Catalog, config: TrainTigerJobConfig, model_config: TigerConfig, inputs: RetrievalInputs,
           epochs: int, directory: pathlib.Path, trained_items: dict[str, str], with_head: bool) -> dict[str, float]:
    from models.tiger_training import refit_tiger
    from pipelines.retrieval.inputs import events_of
    from pipelines.retrieval.sequences import every_event_examples
    from pipelines.training_processes import in_processes

    started = time.perf_counter()
    examples = every_event_examples(events_of(catalog, inputs), inputs.index, model_config.max_history)
    dense = dense_inputs(inputs, examples) if with_head else None
    in_processes(functools.partial(refit_tiger, inputs.index.codes, examples, model_config, config.train, epochs,
                                   directory / SERVING_FILE, dense=dense), config.processes, config.train.device)
    trained_items[SERVING_FILE] = _write_trained_items(directory, SERVING_FILE, inputs, examples)
    return {"epochs": float(max(epochs, 1)), "examples": float(len(examples)), "seconds": time.perf_counter() - started}


def dense_inputs(inputs: RetrievalInputs, trained_on: Examples):
    """The dense head's item vectors (gold.item_embeddings rows) and the items `trained_on` never holds."""
    from models.tiger import item_hashes
    from models.tiger_training import DenseInputs

    vectors = inputs.item_vectors
    if vectors is None or not vectors.shape[1]:
        raise UpstreamTableError(f"TIGER's dense head reads {GOLD_ITEM_EMBEDDINGS.name}, which is empty or "
                                 "missing: run embed-items first")
    return DenseInputs(vectors, trained_on.items_never_seen(len(inputs.index.item_ids)),
                       item_hashes(inputs.index.item_ids))


def _write_trained_items(directory: pathlib.Path, weights: str, inputs: RetrievalInputs, examples: Examples) -> str:
    """The item ids some training example of `weights` holds, beside them: at serving every other item with
    an ID is a cold item (models.cold_start; the dense head scores it from content)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    never = np.zeros(len(inputs.index.item_ids), dtype=bool)
    never[examples.items_never_seen(len(never))] = True
    name = f"{pathlib.Path(weights).stem}.trained_items.parquet"
    pq.write_table(pa.table({"item_id": pa.array(inputs.index.item_ids[~never].tolist(), pa.string())}),
                   directory / name)
    return name


def _stage_warm_start(store: ArtifactStore, rqvae_version: str, config: TigerConfig,
                      directory: pathlib.Path) -> tuple[pathlib.Path | None, pathlib.Path | None]:
    """(the weights warm-started from, their copy kept in the artifact so the run can be replayed);
    (None, None): a cold start."""
    import shutil

    from models.tiger_training import CHECKPOINT_FILE

    warm = _warm_start_weights(store, rqvae_version, config)
    warm_file = directory / WARM_START_FILE
    if warm is not None and warm.parent != directory and not (directory / CHECKPOINT_FILE).exists():
        directory.mkdir(parents=True, exist_ok=True)
        log.info("warm start from %s", warm)
        shutil.copy(warm, warm_file)
    return warm, (warm_file if warm_file.exists() else None)


def _model_card(config: TrainTigerJobConfig, model_config: TigerConfig, inputs: RetrievalInputs, model, state,
                seconds: float, warm: pathlib.Path | None) -> dict[str, Any]:
    """What the artifact records: configs, the tables' versions it read, metrics and the per-epoch history."""
    from models.device import default_device
    from models.tiger import count_parameters
    from models.tiger_training import BEST_FILE

    epochs = state.history
    metrics: dict[str, float] = {
        "best_valid_ndcg@10": state.best_valid, "best_epoch": state.best_epoch,
        "epochs": state.epoch, "steps": state.step, "train_seconds": seconds,
        "examples_per_s": float(np.mean([e["examples_per_s"] for e in epochs])) if epochs else 0.0,
        **inputs.sequences.stats,
    }
    return {
        "config": {"model": dataclasses.asdict(model_config), "train": dataclasses.asdict(config.train),
                   "split": dataclasses.asdict(config.split)},
        "data": inputs.table_versions,
        "rqvae_version": inputs.rqvae_version,
        "run_date": config.run_date.isoformat(),
        "device": str(default_device(config.train.device)),
        "processes": config.processes,
        "parameters": count_parameters(model),
        "weights": BEST_FILE,
        "warm_start": str(warm) if warm else None,
        "metrics": metrics,
        "history": epochs,
    }


def fit_tiger(context: FitContext) -> str:
    """TIGER through the retriever surface: the context's preset, budget and seed."""
    from pipelines.presets import PRESETS

    preset = PRESETS[context.size]
    train = dataclasses.replace(preset.tiger_train, seed=context.seed, device=context.device,
                                max_minutes=context.minutes if context.minutes is not None else preset.tiger_train.max_minutes)
    config = TrainTigerJobConfig(run_date=context.run_date, model=preset.tiger, train=train, version=context.version,
                                 refit=context.refit, processes=context.processes)
    return str(run_train_tiger(context.catalog, context.store, config, inputs=context.inputs,
                               promote=context.promote)["version"])
