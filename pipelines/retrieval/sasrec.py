"""SASRec as a retriever: trained on the lakehouse's split, saved as artifacts/sasrec/<version>/, serving
the top-k of every user over the whole catalog (models/sasrec.py holds the model and its training).

The weights file carries the item ids in row order, so a SASRec trained before new items arrived still
serves: those items get no SASRec score (TIGER's semantic IDs reach them), the rest keep their rows. With
`refit`, a second weights file (`serving.pt`) is trained on every event for the epochs validation chose:
tonight's candidates load it, evaluation and gates the held-out weights.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.config import SASRecConfig
from models.examples import Examples
from models.seen import Seen
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.retrieval.inputs import sequences_at_width
from pipelines.retrieval.item_rows import RowMap
from pipelines.retrieval.retriever import (
    FitContext,
    ItemCatalog,
    Retrieved,
    RetrieverSpec,
    retrieval_version,
)

log = logging.getLogger(__name__)

MODEL = "sasrec"
WEIGHTS_FILE = "sasrec.pt"
SERVING_FILE = "serving.pt"


def fit_sasrec(context: FitContext, config: SASRecConfig | None = None) -> str:
    """Train SASRec (dropout chosen on validation, best epoch kept) and write its artifact; the version."""
    import torch

    from models.sasrec import train_sasrec
    from pipelines.training_processes import in_processes

    config = config or SASRecConfig()
    config = dataclasses.replace(config, seed=context.seed, device=context.device or config.device,
                                 max_minutes=context.minutes if context.minutes is not None else config.max_minutes)
    inputs = context.inputs
    sequences = sequences_at_width(context.catalog, inputs, config.max_length)
    started = time.perf_counter()
    model, report = in_processes(functools.partial(
        train_sasrec, sequences.train, sequences.valid, len(inputs.index.item_ids), config,
        valid_seen=sequences.seen("valid")), context.processes, config.device)
    version = context.version or retrieval_version(context.run_date, inputs)
    directory = context.store.directory(MODEL, version)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "item_ids": [str(i) for i in inputs.index.item_ids],
                "dropout": float(report["chosen"]["dropout"])}, directory / WEIGHTS_FILE)
    card: dict[str, Any] = {
        "config": dataclasses.asdict(config), "data": inputs.table_versions, "run_date": context.run_date.isoformat(),
        "weights": WEIGHTS_FILE, "processes": context.processes,
        "metrics": {"best_valid_ndcg@10": report["chosen"]["valid_ndcg@10"], "best_epoch": report["chosen"]["best_epoch"],
                    "dropout": report["chosen"]["dropout"], "train_seconds": time.perf_counter() - started},
        "candidates": report["candidates"],
    }
    if context.refit:
        card["serving_weights"] = SERVING_FILE
        card["refit"] = _refit(context, config, report["chosen"], directory)
    context.store.write_card(MODEL, version, card, promote=context.promote)
    log.info("SASRec %s: valid NDCG@10 %.4f (dropout %.2f)", version, report["chosen"]["valid_ndcg@10"],
             report["chosen"]["dropout"])
    return version


def _refit(context: FitContext, config: SASRecConfig, chosen: dict, directory) -> dict[str, float]:
    import torch

    from models.sasrec import refit_sasrec
    from pipelines.retrieval.inputs import events_of
    from pipelines.retrieval.sequences import every_event_examples
    from pipelines.training_processes import in_processes

    inputs = context.inputs
    started = time.perf_counter()
    examples = every_event_examples(events_of(context.catalog, inputs), inputs.index, config.max_length)
    model = in_processes(functools.partial(refit_sasrec, examples, len(inputs.index.item_ids), config,
                                           float(chosen["dropout"]), int(chosen["best_epoch"])),
                         context.processes, config.device)
    torch.save({"model": model.state_dict(), "item_ids": [str(i) for i in inputs.index.item_ids],
                "dropout": float(chosen["dropout"])}, directory / SERVING_FILE)
    return {"epochs": float(chosen["best_epoch"]), "examples": float(len(examples)),
            "seconds": time.perf_counter() - started}


@dataclass(frozen=True)
class SASRecRetriever:
    model: Any  # models.sasrec.SASRec
    version: str
    rows: RowMap
    name: str = MODEL

    def top_k(self, examples: Examples, k: int, seen: Seen | None) -> Retrieved:
        from models.sasrec import sasrec_top_k

        width = self.model.config.max_length
        mapped = Examples(examples.users, self.rows.histories(examples.histories[:, -width:]), examples.targets)
        items, scores = sasrec_top_k(self.model, mapped, k, None if seen is None else self.rows.seen(seen))
        items = self.rows.items(items)
        return Retrieved(items, np.where(items >= 0, scores, -np.inf).astype(np.float64))


def load_sasrec(store: ArtifactStore, version: str | None, inputs: ItemCatalog,
                device: str | None = None, serving: bool = False) -> SASRecRetriever:
    import torch

    from models.device import default_device
    from models.sasrec import SASRec

    version = store.resolve(MODEL, version)
    card = store.read_card(MODEL, version)
    config = SASRecConfig(**{**card["config"], "dropout_grid": tuple(card["config"]["dropout_grid"])})
    target = default_device(device)
    weights = card.get("serving_weights") if serving else None
    saved = torch.load(store.directory(MODEL, version) / (weights or card["weights"]), map_location=target,
                       weights_only=True)
    item_ids = np.asarray(saved["item_ids"], dtype=object)
    model = SASRec(len(item_ids), config, float(saved["dropout"]))
    model.load_state_dict(saved["model"])
    return SASRecRetriever(model.to(target).eval(), version, RowMap.between(item_ids, inputs.index))


SPEC = RetrieverSpec(MODEL, fit_sasrec, load_sasrec,
                     "SASRec (causal self-attention over item ids, full-catalog softmax)")
