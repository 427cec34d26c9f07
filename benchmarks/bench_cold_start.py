"""Cold start on real text: items that arrive after training, recommended from their content alone.

    python -m benchmarks.bench_cold_start [--withheld-share 0.1] [--minutes 5] [--seed 0]

On ml-100k (item text: title + genres), a seeded 10% of the items is withheld
as if it arrived after training. The nightly flow runs in two deliveries, as it
would in production:

1. every other item and every event that does not touch a withheld item:
   ingest -> embed-items -> train-rqvae -> assign-semantic-ids; the RQ-VAE
   never sees a withheld item;
2. the withheld items, and each user's last event when it is one of them
   (those stay test targets; their other events never reach the lakehouse):
   ingest -> embed-items (only the new items are encoded) ->
   assign-semantic-ids (the trained RQ-VAE gives them IDs from content).

Then TIGER, TIGER with the dense head, SASRec and popularity are trained on the
split (no withheld item in any training or validation example) and every
method, with the content kNN baseline (items nearest the user's history in text
embedding), is scored on the test users; `cold` counts the users whose target
is a withheld item, `warm` the others. TIGER serves as the nightly job does:
the last 10% of each list goes to cold items ranked by the decoder
(models/cold_start.py); variants without those places, with twice the share
and the dense head's own order are reported beside it. Writes
benchmarks/results/cold_start.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import pathlib
import shutil
import time

import numpy as np
import pandas as pd

from benchmarks.bench_tiger import RUN, WORK, add_tiger_args, tiger_configs
from benchmarks.common import RESULTS, benchmark_logging, write_results
from benchmarks.datasets import DATA_DIR
from models.cold_start import COLD_SHARE
from models.config import RQVAETrainConfig, SASRecConfig
from pipelines.evaluation.evaluate import EvaluateConfig, evaluate_methods
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.lakehouse.catalog import Catalog
from pipelines.lakehouse.config import LakehouseConfig, SparkConfig
from pipelines.presets import DENSE_HEAD
from pipelines.ranking.nightly import UNION_WIDTH
from pipelines.retrieval.inputs import load_retrieval_inputs, sequences_at_width
from pipelines.retrieval.popularity import fit_popularity
from pipelines.retrieval.retriever import FitContext
from pipelines.retrieval.sasrec import fit_sasrec
from pipelines.retrieval.training import TrainTigerJobConfig, run_train_tiger

ARRIVAL = RUN + dt.timedelta(days=1)  # the withheld items' delivery
METHODS = {"tiger": ("tiger", "tiger"), "tiger_dense": ("tiger", "tiger-dense"), "sasrec": ("sasrec", None),
           "popularity": ("popularity", None), "content_knn": ("knn", None)}


def split_deliveries(events_path: pathlib.Path, items_path: pathlib.Path, out: pathlib.Path, share: float,
                     seed: int) -> tuple[set[str], dict[str, pathlib.Path]]:
    """The withheld item ids and the two deliveries' files (u.data / u.item lines, bytes kept as they are)."""
    item_lines = items_path.read_bytes().splitlines(keepends=True)
    item_ids = [line.split(b"|", 1)[0].decode() for line in item_lines]
    rng = np.random.default_rng(seed)
    withheld = set(rng.choice(item_ids, size=round(share * len(item_ids)), replace=False).tolist())
    event_lines = events_path.read_bytes().splitlines(keepends=True)
    events = pd.DataFrame([line.split(b"\t")[:4] for line in event_lines], columns=["user", "item", "rating", "ts"])
    events = events.assign(user=events.user.str.decode("ascii"), item=events.item.str.decode("ascii"),
                           ts=events.ts.astype(np.int64), line=np.arange(len(events)))
    # each user's last event in the pipeline's order (time, then source line)
    last = events.sort_values(["ts", "line"]).groupby("user").line.last()
    is_withheld = events.item.isin(withheld).to_numpy()
    is_last = np.zeros(len(events), dtype=bool)
    is_last[last.to_numpy()] = True
    out.mkdir(parents=True, exist_ok=True)
    files = {"events_1": out / "u1.data", "items_1": out / "u1.item",
             "events_2": out / "u2.data", "items_2": out / "u2.item"}
    files["events_1"].write_bytes(b"".join(line for line, w in zip(event_lines, is_withheld, strict=True) if not w))
    files["events_2"].write_bytes(b"".join(
        line for line, w, end in zip(event_lines, is_withheld, is_last, strict=True) if w and end))
    files["items_1"].write_bytes(b"".join(line for line, i in zip(item_lines, item_ids, strict=True) if i not in withheld))
    files["items_2"].write_bytes(b"".join(line for line, i in zip(item_lines, item_ids, strict=True) if i in withheld))
    return withheld, files


def build_lakehouse(spark, catalog: Catalog, store: ArtifactStore, files: dict[str, pathlib.Path],
                    rqvae_epochs: int) -> dict[str, float]:
    from pipelines.ingest.pipeline import IngestConfig, run_ingest
    from pipelines.items.assignment_job import AssignSemanticIdsConfig, run_assign_semantic_ids
    from pipelines.items.embedding_job import EmbedItemsConfig, run_embed_items
    from pipelines.items.rqvae_job import TrainRQVAEJobConfig, run_train_rqvae

    seconds = {}
    started = time.perf_counter()
    run_ingest(spark, catalog, IngestConfig(format="movielens", dataset="ml-100k", run_date=RUN,
                                            events_paths=(str(files["events_1"]),), items_paths=(str(files["items_1"]),)))
    run_embed_items(spark, catalog, EmbedItemsConfig(run_date=RUN, source="text"))
    run_train_rqvae(catalog, store, TrainRQVAEJobConfig(
        run_date=RUN, train=RQVAETrainConfig(epochs=rqvae_epochs, checkpoint_every=0)))
    run_assign_semantic_ids(spark, catalog, store, AssignSemanticIdsConfig(run_date=RUN))
    seconds["first_delivery"] = time.perf_counter() - started
    started = time.perf_counter()
    run_ingest(spark, catalog, IngestConfig(format="movielens", dataset="ml-100k", run_date=ARRIVAL,
                                            events_paths=(str(files["events_2"]),), items_paths=(str(files["items_2"]),)))
    run_embed_items(spark, catalog, EmbedItemsConfig(run_date=ARRIVAL, source="text"))
    run_assign_semantic_ids(spark, catalog, store, AssignSemanticIdsConfig(run_date=ARRIVAL))
    seconds["new_items_delivery"] = time.perf_counter() - started
    return seconds


def served_as(catalog: Catalog, store: ArtifactStore, inputs, version: str, cold: np.ndarray, warm: np.ndarray,
              dense_beam_weight: float | None = None, cold_share: float | None = None) -> dict:
    """A TIGER `version` served with another dense beam weight or cold-item share, on the test users, cold
    and warm."""
    from models.cold_start import ColdItems
    from pipelines.evaluation.evaluate import method_metrics
    from pipelines.retrieval.registry import retriever_spec

    retriever = retriever_spec("tiger").load(store, version, inputs, None, False)
    if dense_beam_weight is not None:
        retriever = dataclasses.replace(retriever, dense=dataclasses.replace(retriever.dense,
                                                                             beam_weight=dense_beam_weight))
    if cold_share is not None and retriever.cold is not None:
        retriever = dataclasses.replace(retriever, cold=ColdItems(retriever.cold.rows, cold_share))
    sequences = sequences_at_width(catalog, inputs, UNION_WIDTH)
    started = time.perf_counter()
    ranked = retriever.top_k(sequences.test, 10, sequences.seen("test")).items
    users_per_s = len(ranked) / (time.perf_counter() - started)
    _, per_user = method_metrics(ranked, sequences.test.targets, 0)
    return {"cold": metrics_of(per_user, cold), "warm": metrics_of(per_user, warm), "users_per_s": round(users_per_s, 1)}


def paired_on(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, float]:
    """Mean per-user difference ours - theirs over the users `rows`, with its paired standard error."""
    from models.metrics import standard_error

    out: dict[str, float] = {}
    for metric in ("recall@10", "ndcg@10"):
        diff = ours[metric][rows] - theirs[metric][rows]
        out[metric] = round(float(diff.mean()), 4) if len(rows) else 0.0
        out[f"{metric}_se"] = round(standard_error(diff), 4)
    return out


def metrics_of(per_user: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, float]:
    """Recall@10 and NDCG@10 over the users `rows`, each with its standard error over those users."""
    from models.metrics import standard_error

    out: dict[str, float] = {"users": int(len(rows))}
    for metric in ("recall@10", "ndcg@10"):
        values = per_user[metric][rows]
        out[metric] = round(float(values.mean()), 4) if len(rows) else 0.0
        out[f"{metric}_se"] = round(standard_error(values), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_tiger_args(parser)
    parser.set_defaults(size="cpu-bench", minutes=5.0)
    parser.add_argument("--withheld-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0, help="which items are withheld, and every model's seed")
    parser.add_argument("--retrain", type=lambda v: v.split(","), default=None,
                        help="keep the last run's lakehouse and models and retrain only these TIGER versions "
                             "(tiger, tiger-dense; \"\": none); every method is scored again")
    args = parser.parse_args()
    benchmark_logging()
    from pipelines.lakehouse.spark import build_spark_session

    root = WORK / "cold_start"
    catalog = Catalog(LakehouseConfig(root=str(root / "lakehouse")))
    store = ArtifactStore(root=str(root / "artifacts"))
    reuse = args.retrain is not None and (root / "artifacts").exists()
    if not reuse:
        shutil.rmtree(root, ignore_errors=True)
    # seeded: a reuse draws the same withheld items the lakehouse was built without
    withheld, files = split_deliveries(DATA_DIR / "ml-100k/u.data", DATA_DIR / "ml-100k/u.item",
                                       root / "input", args.withheld_share, args.seed)
    if reuse:  # the same split and items: only the named models train again
        seconds = json.loads((RESULTS / "cold_start.json").read_text()).get("seconds", {})
    else:
        spark = build_spark_session(SparkConfig(app_name="bench-cold-start"))
        seconds = build_lakehouse(spark, catalog, store, files, args.rqvae_epochs)
        spark.stop()

    inputs = load_retrieval_inputs(catalog)
    withheld_rows = inputs.index.rows(np.array(sorted(withheld), dtype=object))
    assert (withheld_rows >= 0).all(), "every withheld item got a semantic ID from its content"
    for split in ("train", "valid"):  # no withheld item reaches training or selection
        examples = getattr(inputs.sequences, split)
        assert not np.isin(examples.histories, withheld_rows).any() and not np.isin(examples.targets, withheld_rows).any()
    model, train = tiger_configs(args, args.seed)
    for version, head in (("tiger", {"dense_head": False}), ("tiger-dense", DENSE_HEAD)):
        if reuse and version not in args.retrain:
            continue
        shutil.rmtree(store.directory("tiger", version), ignore_errors=True)
        started = time.perf_counter()
        run_train_tiger(catalog, store, TrainTigerJobConfig(
            run_date=RUN, model=dataclasses.replace(model, **head), train=train, version=version), inputs,
            promote=False)
        seconds[version] = time.perf_counter() - started
    context = FitContext(catalog, store, inputs, RUN, minutes=args.minutes / len(SASRecConfig.dropout_grid),
                         seed=args.seed, version="sasrec")
    if not reuse:
        fit_popularity(dataclasses.replace(context, version="popularity"))
        fit_sasrec(context, SASRecConfig(eval_users=args.eval_users))

    test = sequences_at_width(catalog, inputs, UNION_WIDTH).test
    cold = np.flatnonzero(np.isin(test.targets, withheld_rows))
    warm = np.flatnonzero(~np.isin(test.targets, withheld_rows))
    methods = {}
    users: dict[str, dict[str, np.ndarray]] = {}  # method -> per-user metrics, every test user
    for name, (retriever, version) in METHODS.items():
        versions = ((retriever, version or name),) if retriever != "knn" else ()
        evaluation = evaluate_methods(catalog, store, EvaluateConfig(
            run_date=RUN, retrievers=(retriever,) if retriever != "knn" else (), versions=versions,
            knn=retriever == "knn", nightly=False), inputs)
        per_user = evaluation.per_user[retriever]
        users[name] = per_user
        methods[name] = {"cold": metrics_of(per_user, cold), "warm": metrics_of(per_user, warm)}
        print(name, methods[name])
    # what the cold-item places cost warm users and give cold ones (models.cold_start): none, the default
    # share, twice it; and the dense head's own order (beam weight 0; validation, which holds no cold target,
    # favours the beam)
    variants = {"tiger_served": ("tiger", {}), "tiger_no_cold_places": ("tiger", {"cold_share": 0.0}),
                f"tiger_cold_share_{2 * COLD_SHARE:g}": ("tiger", {"cold_share": 2 * COLD_SHARE}),
                "tiger_dense_no_cold_places": ("tiger-dense", {"cold_share": 0.0}),
                "tiger_dense_weight_0": ("tiger-dense", {"dense_beam_weight": 0.0})}
    for name, (version, changes) in variants.items():
        methods[name] = served_as(catalog, store, inputs, version, cold, warm, **changes)
        print(name, methods[name])
    dense_card = store.read_card("tiger", "tiger-dense")
    best_cold = max(("content_knn", "popularity"), key=lambda m: methods[m]["cold"]["ndcg@10"])
    write_results("cold_start", {
        "dataset": "ml-100k", "seed": args.seed, "withheld_share": args.withheld_share,
        "withheld_items": len(withheld), "items": len(inputs.index.item_ids),
        "cold_test_users": int(len(cold)), "warm_test_users": int(len(warm)),
        "minutes_per_model": args.minutes, "cold_share": COLD_SHARE,
        "methods": methods,
        # the same cold users, each scored by both methods: differences and their paired standard errors
        "paired_on_cold": {f"{m}_minus_content_knn": paired_on(users[m], users["content_knn"], cold)
                           for m in ("tiger", "tiger_dense")},
        "tiger_beats_content_knn_and_popularity_on_cold": {
            m: bool(methods[m]["cold"]["ndcg@10"] > methods[best_cold]["cold"]["ndcg@10"]
                    and methods[m]["cold"]["recall@10"] > max(methods[b]["cold"]["recall@10"]
                                                               for b in ("content_knn", "popularity")))
            for m in ("tiger", "tiger_dense")},
        "tiger_dense_beam_weight": dense_card["dense"]["beam_weight"],
        # the cold places' serving cost: TIGER's top-10 with them over without them, same users, one process
        "cold_places_speed_ratio": round(methods["tiger_served"]["users_per_s"]
                                         / methods["tiger_no_cold_places"]["users_per_s"], 2),
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    })


if __name__ == "__main__":
    main()
