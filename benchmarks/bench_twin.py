"""TWIN-V2 ranker: clusters vs. the raw history (speed, AUC), the ln(n) ablation, and the rerank's effect.

    python benchmarks/bench_twin.py [--users 48] [--events 10000]

1. Synthetic users of 10^4 events (the generator's category structure; item
   vectors from `synthetic_item_embeddings`): each history is clustered
   (TWIN-V2, gamma 20); the last 10 events of each user are the positives
   (random catalog items the negatives). The same ranker is trained twice,
   over the clusters and over the raw full history (each event a "cluster" of
   n = 1), and both score the same held-out pairs: candidates/s
   (`speedup_vs_raw_history`, target >= 10x) and AUC
   (`auc_clusters_minus_raw`, target within 0.01).
2. MovieLens-100K through the real jobs (the lakehouse left by
   bench_tiger.py, which trained TIGER there): clusters without held-out
   events, the ranker trained with and without ln(n) and on the 100 most
   recent raw events instead of clusters; AUC/GAUC on the test events and
   Recall/NDCG@10 of TIGER alone vs. TIGER + rerank.
Writes benchmarks/results/twin.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import pathlib
import sys
import time

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchmarks.common import write_results  # noqa: E402
from models.config import TwinConfig, TwinTrainConfig  # noqa: E402
from models.twin_training import score, train_twin  # noqa: E402
from pipelines.clustering import ClusteringConfig, cluster_history  # noqa: E402
from pipelines.ingest.synthetic import (  # noqa: E402
    SynthConfig,
    generate_events,
    generate_items,
    synthetic_item_embeddings,
)
from pipelines.twin_data import UserClusters, auc  # noqa: E402

WORK = pathlib.Path(__file__).resolve().parent / ".work"
RUN = dt.date(2026, 11, 24)
HELD_OUT = 10


def synthetic(args) -> dict:
    rng = np.random.default_rng(0)
    items = generate_items(SynthConfig(n_items=5_000, seed=3), rng)
    vectors = synthetic_item_embeddings(items, dim=64, seed=3)
    codes = np.zeros((len(items), 4), dtype=np.int64)  # no semantic IDs here: content vectors only
    row_of = {item: k for k, item in enumerate(items["item_id"])}
    events = generate_events(SynthConfig(n_items=len(items), n_users=args.users, median_history=args.events,
                                         max_history=args.events, history_sigma=0.0, seed=5), items, rng)
    cluster_lists: dict[str, list[np.ndarray]] = {"items": [], "sizes": [], "cross": []}
    raw_lists: dict[str, list[np.ndarray]] = {"items": [], "sizes": [], "cross": []}
    positives, owners, compression = [], [], []
    for user, (_, history) in enumerate(events.groupby("user_id", sort=True)):
        history = history.sort_values("ts")
        past, future = history.iloc[:-HELD_OUT], history.iloc[-HELD_OUT:]
        rows = past["item_id"].map(row_of).to_numpy()
        ts = past["ts"].astype("int64").to_numpy() / 1e9
        result = cluster_history(past["item_id"].to_numpy(), vectors[rows], past["completion"].to_numpy(),
                                 past["rating"].to_numpy(), ts, float(ts.max()), ClusteringConfig(gamma=20))
        c = result.clusters
        cluster_lists["items"].append(c["representative_item_id"].map(row_of).to_numpy())
        cluster_lists["sizes"].append(c["size"].to_numpy())
        cluster_lists["cross"].append(np.nan_to_num(np.stack([
            c["completion_mean"], c["rating_mean"] / 5, np.log1p(c["recency_days_mean"]) / 10], 1), nan=0.0)
            .astype(np.float32))
        raw_lists["items"].append(rows)
        raw_lists["sizes"].append(np.ones(len(rows), dtype=np.int64))
        raw_lists["cross"].append(np.nan_to_num(np.stack([
            past["completion"], past["rating"] / 5, np.log1p((ts.max() - ts) / 86_400) / 10], 1), nan=0.0)
            .astype(np.float32))
        compression.append(len(past) / len(c))
        positives += list(future["item_id"].map(row_of))
        owners += [user] * HELD_OUT
    # pairs: each held-out event + 4 random catalog negatives; users split in half for train / test
    n_neg = 4
    users = np.repeat(owners, 1 + n_neg)
    targets = np.stack([np.asarray(positives), *rng.integers(0, len(items), (n_neg, len(positives)))], 1).reshape(-1)
    labels = np.tile(np.r_[1.0, np.zeros(n_neg)], len(positives)).astype(np.float32)
    is_train = users < args.users // 2
    config = TwinConfig(item_dim=64, codebook_size=1, code_levels=4)
    train = TwinTrainConfig(epochs=args.twin_epochs, batch_size=64)
    out: dict = {"users": args.users, "events_per_user": args.events, "pairs_scored": int((~is_train).sum()),
                 "compression": round(float(np.mean(compression)), 2)}
    for name, lists in (("clusters", cluster_lists), ("raw_history", raw_lists)):
        model, _ = train_twin(config, train, vectors, codes, users[is_train], targets[is_train], labels[is_train],
                              lists["items"], lists["sizes"], lists["cross"], progress=False)
        v, c = torch.as_tensor(vectors), torch.as_tensor(codes)
        keys = model.precompute_item_keys(v, c)
        started = time.perf_counter()
        scores = score(model, v, c, users[~is_train], targets[~is_train], lists["items"], lists["sizes"],
                       lists["cross"], batch_size=64, precomputed=keys)
        seconds = time.perf_counter() - started
        out[name] = {"candidates_per_s": round(len(scores) / seconds, 1),
                     "auc": round(auc(labels[~is_train], scores), 4),
                     "keys_per_user": round(float(np.mean([len(x) for x in lists["items"]])), 1)}
        print(f"synthetic {args.events:,}-event users, {name}: {out[name]}")
    out["speedup_vs_raw_history"] = round(out["clusters"]["candidates_per_s"] / out["raw_history"]["candidates_per_s"], 2)
    out["auc_clusters_minus_raw"] = round(out["clusters"]["auc"] - out["raw_history"]["auc"], 4)
    return out


def raw_recent_clusters(catalog, inputs, limit: int) -> UserClusters:
    """The ablation's keys: each user's `limit` most recent training events, one 'cluster' (n = 1) each."""
    from pipelines.delta import read_table_arrow

    events = read_table_arrow(catalog, "silver.events", columns=["user_id", "item_id", "ts", "completion", "rating"])[0]
    frame = events.to_pandas().sort_values(["user_id", "ts", "item_id"], kind="stable")
    frame = frame[frame.groupby("user_id").cumcount(ascending=False) >= 2]  # drop valid + test events
    frame = frame.groupby("user_id").tail(limit)
    as_of = frame.groupby("user_id")["ts"].transform("max")
    frame = frame.assign(size=1, representative_item_id=frame["item_id"], completion_mean=frame["completion"],
                         rating_mean=frame["rating"], cluster_id=frame.groupby("user_id").cumcount(),
                         recency_days_mean=(as_of - frame["ts"]).dt.total_seconds() / 86_400)
    from pipelines.twin_data import user_clusters

    return user_clusters(frame, inputs.retrieval.index)


def movielens(args) -> dict | None:
    from pipelines.artifacts import ArtifactStore
    from pipelines.behavior import BehaviorClusterConfig, run_cluster_behaviors
    from pipelines.candidates import load_tiger, tiger_top_k
    from pipelines.config import LakehouseConfig, SparkConfig
    from pipelines.ranker import (
        evaluate_ranker,
        fit_ranker,
        load_ranker_inputs,
        rerank,
        tiger_candidates_for,
    )
    from pipelines.ranking import ranking_metrics
    from pipelines.spark import build_spark_session
    from pipelines.tables import Catalog

    root = WORK / "ml-100k"
    if not (root / "artifacts" / "tiger").exists():
        print(f"ml-100k: no TIGER under {root}; run benchmarks/bench_tiger.py --datasets ml-100k first")
        return None
    catalog = Catalog(LakehouseConfig(root=str(root / "lakehouse")))
    store = ArtifactStore(root=str(root / "artifacts"))
    spark = build_spark_session(SparkConfig(app_name="bench-twin"))
    started = time.perf_counter()
    report = run_cluster_behaviors(spark, catalog, BehaviorClusterConfig(run_date=RUN, holdout="valid_test",
                                                                         full_refresh=True))
    spark.stop()
    out: dict = {"cluster_seconds": round(time.perf_counter() - started, 1),
                 "compression": round(report.metrics["compression"], 2)}
    inputs = load_ranker_inputs(catalog)
    test = inputs.retrieval.sequences.test
    hard = tiger_candidates_for(store, inputs.retrieval, inputs.retrieval.sequences.valid, 20)
    base = TwinConfig()
    train = TwinTrainConfig(epochs=args.twin_epochs)
    tiger, _, _ = load_tiger(store, None, inputs.retrieval, None)
    top = tiger_top_k(tiger, inputs.retrieval, test, args.rerank_from, None, True, batch_size=64).items.numpy()
    out["tiger"] = {k: round(v, 4) for k, v in ranking_metrics(top[:, :10], test.targets).items()}
    variants = {
        "clusters_ln_n": (base, None),
        "clusters_no_ln_n": (dataclasses.replace(base, use_log_n=False), None),
        "raw_recent_100": (base, raw_recent_clusters(catalog, inputs, 100)),
    }
    for name, (config, clusters) in variants.items():
        view = inputs if clusters is None else dataclasses.replace(inputs, clusters=clusters)
        model, _ = fit_ranker(view, config, train, hard, clusters)
        quality = evaluate_ranker(model, view, test, negatives=20, seed=7)
        items, _, _ = rerank(model, view, test.users, top, 10)
        out[name] = {"auc": round(quality["auc"], 4), "gauc": round(quality["gauc"], 4),
                     **{f"rerank_{k}": round(v, 4) for k, v in ranking_metrics(items, test.targets).items()}}
        print(f"ml-100k {name}: {out[name]}")
    out["rerank_recall@10_minus_tiger"] = round(out["clusters_ln_n"]["rerank_recall@10"] - out["tiger"]["recall@10"], 4)
    out["rerank_ndcg@10_minus_tiger"] = round(out["clusters_ln_n"]["rerank_ndcg@10"] - out["tiger"]["ndcg@10"], 4)
    print(f"ml-100k TIGER alone {out['tiger']}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=48)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--twin-epochs", type=int, default=10)
    parser.add_argument("--rerank-from", type=int, default=50)
    parser.add_argument("--skip-movielens", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results = {"synthetic_1e4": synthetic(args)}
    results["speedup_vs_raw_history"] = results["synthetic_1e4"]["speedup_vs_raw_history"]
    results["auc_clusters_minus_raw"] = results["synthetic_1e4"]["auc_clusters_minus_raw"]
    if not args.skip_movielens:
        ml = movielens(args)
        if ml is not None:
            results["ml-100k"] = ml
    write_results("twin", results)


if __name__ == "__main__":
    main()
