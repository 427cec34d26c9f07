"""TWIN-V2 ranker: clusters vs. the raw history (speed, AUC), the ln(n) ablation, and the rerank's effect.

    python -m benchmarks.bench_twin [--users 48] [--events 10000]

1. Synthetic users of 10^4 events (the generator's category structure; item
   vectors from `synthetic_item_embeddings`): each history is clustered
   (TWIN-V2, gamma 20) without its last --held-out events, which are the
   positives (random catalog items the negatives); the ranker learns from
   --train-users other users of --train-events events and scores the 10^4-event
   users. The same ranker is trained twice, over the clusters
   and over the raw full history (each event a "cluster" of n = 1), and both
   score the same held-out pairs: candidates/s (`speedup_vs_raw_history`,
   target >= 10x) and AUC (`auc_clusters_minus_raw`, the mean over
   --synthetic-seeds ranker seeds of the paired difference, target within 0.01).
   An untrained yardstick shows the task is learnable: the cosine between the
   target and the mean of the user's history.
2. Real data: MovieLens-100K (built here through the real jobs, or the
   lakehouse a bench_tiger.py run left: --tiger-run benchmarks/.work/ml-100k)
   and Amazon Beauty (--beauty-run benchmarks/.work/amazon-beauty). Clusters
   without held-out events, then the ranker trained several ways (--variants):
   the nightly recipe (`twin_v2`: training cuts with the union's candidates as
   negatives, the short-term keys, the hashed item-ID embedding), without the
   short-term keys, without the item-ID embedding, with catalog negatives only
   at the cuts, and the previous recipe (one positive per user, the
   validation event). Each is evaluated on the
   test users outside the calibration share: AUC/GAUC, Recall/NDCG@10 of the
   ranker alone (`rerank_*`) and of tonight's list, the union of the trained
   retrievers ordered by the fusion chosen and gated on the calibration users
   (`nightly_*`); its lift over the best single retriever in NDCG@10 with the
   standard error of the paired per-user difference (`lift_standard_errors`,
   target >= 2) and its 95% interval. --gammas adds ml-100k's AUC by TWIN-V2's cluster-size
   threshold (mean over --sweep-seeds ranker seeds, next to the raw history).
Writes benchmarks/results/twin.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import pathlib
import time
from dataclasses import dataclass

import numpy as np
import torch

from benchmarks.bench_tiger import add_tiger_args
from benchmarks.common import RESULTS, write_results
from models.config import TwinConfig, TwinTrainConfig
from models.metrics import auc
from models.twin_training import score, train_twin
from pipelines.behavior.clustering import cluster_history
from pipelines.behavior.config import ClusteringConfig
from pipelines.ingest.synthetic import (
    SynthConfig,
    generate_events,
    generate_items,
    synthetic_item_embeddings,
)
from pipelines.ranking.config import RerankConfig
from pipelines.ranking.examples import UserClusters
from pipelines.splits import SEQUENCE_COLUMNS, in_event_order

WORK = pathlib.Path(__file__).resolve().parent / ".work"
RUN = dt.date(2026, 11, 24)


@dataclass
class Population:
    """Synthetic users' keys (clusters and raw events, per user) and labelled pairs on their last events."""

    clusters: dict[str, list[np.ndarray]]
    raw: dict[str, list[np.ndarray]]
    users: np.ndarray  # pair -> user position
    targets: np.ndarray  # pair -> item row
    labels: np.ndarray
    history_cosine: np.ndarray  # pair -> cos(target, mean of the user's past): the untrained yardstick
    compression: float


def population(items, vectors: np.ndarray, n_users: int, n_events: int, held_out: int, negatives: int,
               seed: int) -> Population:
    rng = np.random.default_rng(seed)
    row_of = {item: k for k, item in enumerate(items["item_id"])}
    events = generate_events(SynthConfig(n_items=len(items), n_users=n_users, median_history=n_events,
                                         max_history=n_events, history_sigma=0.0, seed=seed), items, rng)
    clusters: dict[str, list[np.ndarray]] = {"items": [], "sizes": [], "cross": []}
    raw: dict[str, list[np.ndarray]] = {"items": [], "sizes": [], "cross": []}
    positives, owners, compression, means = [], [], [], []
    for user, (_, history) in enumerate(events.groupby("user_id", sort=True)):
        history = history.sort_values("ts")
        past, future = history.iloc[:-held_out], history.iloc[-held_out:]
        rows = past["item_id"].map(row_of).to_numpy()
        ts = past["ts"].astype("int64").to_numpy() / 1e9
        result = cluster_history(past["item_id"].to_numpy(), vectors[rows], past["completion"].to_numpy(),
                                 past["rating"].to_numpy(), ts, ClusteringConfig(gamma=20))
        c = result.clusters
        clusters["items"].append(c["representative_item_id"].map(row_of).to_numpy())
        clusters["sizes"].append(c["size"].to_numpy())
        clusters["cross"].append(np.nan_to_num(np.stack([
            c["completion_mean"], c["rating_mean"] / 5, np.log1p(c["recency_days_mean"]) / 10], 1), nan=0.0)
            .astype(np.float32))
        raw["items"].append(rows)
        raw["sizes"].append(np.ones(len(rows), dtype=np.int64))
        raw["cross"].append(np.nan_to_num(np.stack([
            past["completion"], past["rating"] / 5, np.log1p((ts.max() - ts) / 86_400) / 10], 1), nan=0.0)
            .astype(np.float32))
        compression.append(len(past) / len(c))
        means.append(vectors[rows].mean(0))
        positives += list(future["item_id"].map(row_of))
        owners += [user] * held_out
    # each held-out event + random catalog negatives
    users = np.repeat(owners, 1 + negatives)
    targets = np.stack([np.asarray(positives), *rng.integers(0, len(items), (negatives, len(positives)))], 1).reshape(-1)
    labels = np.tile(np.r_[1.0, np.zeros(negatives)], len(positives)).astype(np.float32)
    mean = np.asarray(means)[users]
    cosine = np.einsum("pd,pd->p", vectors[targets], mean) / np.linalg.norm(mean, axis=1)
    return Population(clusters, raw, users, targets, labels, cosine, float(np.mean(compression)))


def synthetic(args) -> dict:
    items = generate_items(SynthConfig(n_items=5_000, seed=3), np.random.default_rng(0))
    vectors = synthetic_item_embeddings(items, dim=64, seed=3)
    codes = np.zeros((len(items), 4), dtype=np.int64)  # no semantic IDs here: content vectors only
    # the ranker learns from many users (what it must learn is user-independent: does the target match the
    # user's interests?) and is scored on other users whose histories are 10^4 events long
    fit = population(items, vectors, args.train_users, args.train_events, args.held_out, 4, seed=5)
    scored = population(items, vectors, args.users, args.events, args.held_out, 4, seed=6)
    # clusters vs. the raw history as the keys: no short-term keys, the three cluster cross features
    config = TwinConfig(item_dim=64, codebook_size=1, code_levels=4, cross_features=3, recent_events=0,
                        item_id_buckets=0)
    train = TwinTrainConfig(epochs=args.twin_epochs, batch_size=64)
    out: dict = {"scored_users": args.users, "events_per_scored_user": args.events,
                 "training_users": args.train_users, "events_per_training_user": args.train_events,
                 "held_out_per_user": args.held_out, "pairs_trained": len(fit.labels),
                 "pairs_scored": len(scored.labels), "compression": round(scored.compression, 2),
                 "history_cosine_auc": round(auc(scored.labels, scored.history_cosine), 4)}
    print(f"synthetic: {out['pairs_trained']:,} training pairs; untrained history-cosine AUC {out['history_cosine_auc']}")
    v, c = torch.as_tensor(vectors), torch.as_tensor(codes)
    # one seed's AUC swings by up to 0.2 (200 training users: 0.63 to 0.85 across seeds): several ranker seeds,
    # each trained on both key sets and scored on the same pairs, and the paired difference over seeds
    per_seed: dict[str, list[dict]] = {"clusters": [], "raw_history": []}
    for seed in args.synthetic_seeds:
        for name in ("clusters", "raw_history"):
            fit_keys, scored_keys = getattr(fit, name.split("_")[0]), getattr(scored, name.split("_")[0])
            started = time.perf_counter()
            model, _ = train_twin(config, dataclasses.replace(train, seed=seed), vectors, codes, fit.users,
                                  fit.targets, fit.labels, fit_keys["items"], fit_keys["sizes"], fit_keys["cross"],
                                  progress=False)
            train_seconds = time.perf_counter() - started
            keys = model.precompute_item_keys(v, c)
            started = time.perf_counter()
            scores = score(model, v, c, scored.users, scored.targets, scored_keys["items"], scored_keys["sizes"],
                           scored_keys["cross"], batch_size=64, precomputed=keys)
            seconds = time.perf_counter() - started
            per_seed[name].append({"seed": seed, "auc": auc(scored.labels, scores),
                                   "candidates_per_s": len(scores) / seconds, "train_seconds": train_seconds})
            print(f"synthetic {args.events:,}-event users, {name}, ranker seed {seed}: "
                  f"AUC {per_seed[name][-1]['auc']:.4f}, {per_seed[name][-1]['candidates_per_s']:.0f} candidates/s")
    for name, runs in per_seed.items():
        aucs = np.array([r["auc"] for r in runs])
        out[name] = {"candidates_per_s": round(float(np.median([r["candidates_per_s"] for r in runs])), 1),
                     "auc": round(float(aucs.mean()), 4),
                     "auc_std": round(float(aucs.std(ddof=1)), 4) if len(aucs) > 1 else None,
                     "auc_by_seed": [round(float(a), 4) for a in aucs],
                     "keys_per_user": round(float(np.mean([len(x) for x in getattr(scored, name.split("_")[0])["items"]])), 1),
                     "train_seconds": round(float(np.mean([r["train_seconds"] for r in runs])), 1)}
    out["ranker_seeds"] = list(args.synthetic_seeds)
    out["speedup_vs_raw_history"] = round(out["clusters"]["candidates_per_s"] / out["raw_history"]["candidates_per_s"], 2)
    gaps = np.array([a["auc"] - b["auc"] for a, b in zip(per_seed["clusters"], per_seed["raw_history"], strict=True)])
    out["auc_clusters_minus_raw"] = round(float(gaps.mean()), 4)
    out["auc_clusters_minus_raw_se"] = (round(float(gaps.std(ddof=1) / np.sqrt(len(gaps))), 4)
                                        if len(gaps) > 1 else None)
    return out


def raw_recent_clusters(catalog, inputs, limit: int | None) -> UserClusters:
    """The ablation's keys: each user's `limit` most recent training events (None: all of them), one
    'cluster' (n = 1) each."""
    from pipelines.lakehouse.table_io import read_table_arrow

    events = read_table_arrow(catalog, "silver.events", columns=[*SEQUENCE_COLUMNS, "completion", "rating"])[0]
    frame = in_event_order(events.to_pandas())
    frame = frame[frame.groupby("user_id").cumcount(ascending=False) >= 2]  # drop valid + test events
    if limit is not None:
        frame = frame.groupby("user_id").tail(limit)
    as_of = frame.groupby("user_id")["ts"].transform("max")
    frame = frame.assign(size=1, representative_item_id=frame["item_id"], completion_mean=frame["completion"],
                         rating_mean=frame["rating"], cluster_id=frame.groupby("user_id").cumcount(),
                         recency_days_mean=(as_of - frame["ts"]).dt.total_seconds() / 86_400)
    from pipelines.ranking.examples import user_clusters

    return user_clusters(frame, inputs.retrieval.index)


def train_tiger_on_movielens(spark, catalog, store, args) -> bool:
    """ml-100k from scratch into `catalog`: semantic IDs, then TIGER as bench_tiger.py trains it."""
    import shutil

    from benchmarks.bench_tiger import build_semantic_ids, tiger_configs
    from pipelines.retrieval.training import TrainTigerJobConfig, run_train_tiger

    shutil.rmtree(pathlib.Path(catalog.config.root).parent, ignore_errors=True)
    if build_semantic_ids(spark, catalog, store, "ml-100k", args) is None:
        return False
    model, train = tiger_configs(args)
    run_train_tiger(catalog, store, TrainTigerJobConfig(run_date=RUN, model=model, train=train))
    return True


def real_dataset(name: str, args) -> dict | None:
    """The ranker on a real dataset's lakehouse (a bench_tiger.py work folder; ml-100k is built here when none
    is given): clusters without held-out events, then the ranker trained several ways and evaluated on the
    test users outside the calibration share, ordering the union of the trained retrievers (TIGER, and SASRec
    when the run trained one) against the best single retriever's own list of the same depth."""
    from models.metrics import per_user_gains, ranking_metrics, standard_error
    from pipelines.behavior.clustering_job import BehaviorClusterConfig, run_cluster_behaviors
    from pipelines.lakehouse.artifacts import ArtifactStore
    from pipelines.lakehouse.catalog import Catalog
    from pipelines.lakehouse.config import LakehouseConfig, SparkConfig
    from pipelines.lakehouse.spark import build_spark_session
    from pipelines.ranking.examples import with_recent_events
    from pipelines.ranking.fusion import calibration_users
    from pipelines.ranking.inputs import load_ranker_inputs
    from pipelines.ranking.nightly import NightlyModels, nightly_lists
    from pipelines.ranking.serving import evaluate_ranker
    from pipelines.ranking.training import (
        fit_ranker_and_fusion,
        load_training_cuts,
        union_negatives_at_cuts,
        union_source,
    )
    from pipelines.retrieval.registry import DEFAULT_RETRIEVERS

    spark = build_spark_session(SparkConfig(app_name="bench-twin"))
    given = {"ml-100k": args.tiger_run, "amazon-beauty": args.beauty_run}[name]
    root = pathlib.Path(given) if given else WORK / "twin" / name
    catalog = Catalog(LakehouseConfig(root=str(root / "lakehouse")))
    store = ArtifactStore(root=str(root / "artifacts"))
    if given is None and (name != "ml-100k" or not train_tiger_on_movielens(spark, catalog, store, args)):
        spark.stop()
        return None
    started = time.perf_counter()
    report = run_cluster_behaviors(spark, catalog, BehaviorClusterConfig(run_date=RUN, holdout="valid_test",
                                                                         full_refresh=True))
    out: dict = {"cluster_seconds": round(time.perf_counter() - started, 1),
                 "compression": round(report.metrics["compression"], 2)}
    spark.stop()
    inputs = load_ranker_inputs(catalog)
    depth = args.rerank_depth
    source = union_source(catalog, store, inputs.retrieval, DEFAULT_RETRIEVERS)
    if source is None:
        raise SystemExit(f"{root}: no trained retriever under {store.root}")
    valid_union = source.valid_union(depth)
    test, test_seen = source.sequences.test, source.sequences.seen("test")
    test_union = source.union(test, test_seen, depth)
    out["retrievers"] = {n: r.version for n, r in source.retrievers.items()}
    rerank_config = RerankConfig(depth=depth)
    train = TwinTrainConfig(epochs=args.twin_epochs)
    valid = inputs.retrieval.sequences.valid
    calibrated = set(valid.users[calibration_users(valid.users, rerank_config.calibration_share, train.seed)])
    scored = np.array([u not in calibrated for u in test.users])  # measured on users the fusion was not chosen on
    targets = test.targets[scored]
    out.update({"rerank_depth": depth, "test_users": int(scored.sum()), "calibration_users": len(calibrated)})
    singles = {n: test_union.of_retriever(n)[:, :10] for n in test_union.retrievers}
    for n, ranked in singles.items():
        out[n] = {k: round(v, 4) for k, v in ranking_metrics(ranked[scored], targets).items()}
    best_single = max(singles, key=lambda n: out[n]["ndcg@10"])
    _, single_gains = per_user_gains(singles[best_single][scored], targets, 10)

    started = time.perf_counter()
    cuts = load_training_cuts(catalog, inputs, train)
    cut_hard = union_negatives_at_cuts(source, cuts, rerank_config.hard_negative_pool)
    out["training_cuts"] = {"cuts": len(cuts), "positives": int(sum(len(p) for p in cuts.positives)),
                            "seconds": round(time.perf_counter() - started, 1)}
    base = TwinConfig()
    one_positive = TwinTrainConfig(epochs=30, batch_size=64, cuts_per_user=0)  # the previous recipe's schedule
    variants = {  # name: (model config, train config, cuts, the union's candidates as negatives at the cuts)
        "twin_v2": (base, train, cuts, True),
        "no_short_term": (dataclasses.replace(base, recent_events=0), train, cuts, True),
        "no_item_id": (dataclasses.replace(base, item_id_buckets=0), train, cuts, True),
        # the retrievers were trained on these very histories: their candidates at a cut may be biased negatives
        "catalog_negatives_at_cuts": (base, train, cuts, False),
        "one_positive_per_user": (dataclasses.replace(base, recent_events=0), one_positive, None, False),
    }
    for variant, (config, schedule, variant_cuts, union_at_cuts) in variants.items():
        if args.variants and variant not in args.variants:
            continue
        started = time.perf_counter()
        model, _, fusion = fit_ranker_and_fusion(inputs, config, schedule, valid_union, rerank_config,
                                                 cuts=variant_cuts, cut_hard=cut_hard if union_at_cuts else None)
        seconds = time.perf_counter() - started
        quality = evaluate_ranker(model, inputs, inputs.retrieval.sequences.test, negatives=20, seed=7)
        keys = with_recent_events(inputs.clusters, test.users, test.histories, config.recent_events)
        lists = nightly_lists(NightlyModels(source.retrievers, fusion, model, inputs.vectors, inputs.tokens), test,
                              test_seen, keys, depth)
        ranked = lists.items(10)
        ranker_only = np.take_along_axis(test_union.items, np.argsort(-lists.logits, axis=1, kind="stable"), 1)[:, :10] \
            if lists.logits is not None else ranked
        _, gains = per_user_gains(ranked[scored], targets, 10)
        lift, lift_se = float(np.mean(gains - single_gains)), standard_error(gains - single_gains)
        out[variant] = {
            "auc": round(quality["auc"], 4), "gauc": round(quality["gauc"], 4), "train_seconds": round(seconds, 1),
            **{f"rerank_{k}": round(v, 4) for k, v in ranking_metrics(ranker_only[scored], targets).items()},
            "fusion": fusion.to_card(),
            **{f"nightly_{k}": round(v, 4) for k, v in ranking_metrics(ranked[scored], targets).items()},
            "nightly_ndcg@10_minus_best_single": round(lift, 5), "nightly_ndcg@10_minus_best_single_se": round(lift_se, 5),
            "lift_standard_errors": round(lift / lift_se, 2) if lift_se else 0.0,
            "lift_95ci": [round(lift - 1.96 * lift_se, 5), round(lift + 1.96 * lift_se, 5)],
        }
        print(f"{name} {variant}: {out[variant]}")
    headline = out.get("twin_v2") or previous_headline(name)
    out["best_single"] = best_single
    out["nightly_ndcg@10_minus_best_single"] = headline.get("nightly_ndcg@10_minus_best_single")
    out["lift_standard_errors"] = headline.get("lift_standard_errors")
    print(f"{name} best single retriever {best_single}: {out[best_single]}")
    if name == "ml-100k" and args.gammas:
        out["auc_by_gamma"] = auc_by_gamma(catalog, args, base, train, valid_union)
    return out


RANKER_VARIANTS = ("twin_v2", "no_short_term", "no_item_id", "catalog_negatives_at_cuts", "one_positive_per_user")


def previous_headline(name: str) -> dict:
    """The nightly recipe's figures of the last results file (when --variants leaves it out of this run)."""
    previous = RESULTS / "twin.json"
    return json.loads(previous.read_text())[name]["twin_v2"] if previous.exists() else {}


def auc_by_gamma(catalog, args, base: TwinConfig, train: TwinTrainConfig, valid_union) -> dict:
    """Ranker AUC on the test events over clusters of at most gamma events, for each gamma, and over the raw
    full history; each the mean over --sweep-seeds ranker seeds. The lakehouse is left at the last gamma."""
    from pipelines.behavior.clustering_job import BehaviorClusterConfig, run_cluster_behaviors
    from pipelines.lakehouse.config import SparkConfig
    from pipelines.lakehouse.spark import build_spark_session
    from pipelines.ranking.inputs import load_ranker_inputs
    from pipelines.ranking.serving import evaluate_ranker
    from pipelines.ranking.training import fit_ranker_and_fusion

    spark = build_spark_session(SparkConfig(app_name="bench-twin-gamma"))

    def mean_quality(inputs, clusters) -> dict:
        aucs, gaucs = [], []
        for seed in range(args.sweep_seeds):
            model, _, _ = fit_ranker_and_fusion(inputs, base, dataclasses.replace(train, seed=seed), valid_union,
                                                RerankConfig(depth=args.rerank_depth), clusters=clusters)
            quality = evaluate_ranker(model, inputs, inputs.retrieval.sequences.test, negatives=20, seed=7)
            aucs.append(quality["auc"])
            gaucs.append(quality["gauc"])
        return {"auc": round(float(np.mean(aucs)), 4), "gauc": round(float(np.mean(gaucs)), 4),
                "auc_by_seed": [round(a, 4) for a in aucs]}

    out: dict = {"seeds": args.sweep_seeds}
    for gamma in args.gammas:
        report = run_cluster_behaviors(spark, catalog, BehaviorClusterConfig(
            run_date=RUN, clustering=ClusteringConfig(gamma=gamma), holdout="valid_test", full_refresh=True))
        out[f"gamma_{gamma}"] = {"compression": round(report.metrics["compression"], 2),
                                 **mean_quality(load_ranker_inputs(catalog), None)}
        print(f"ml-100k gamma {gamma}: {out[f'gamma_{gamma}']}")
    inputs = load_ranker_inputs(catalog)
    raw = raw_recent_clusters(catalog, inputs, None)
    out["raw_full_history"] = mean_quality(dataclasses.replace(inputs, clusters=raw), raw)
    print(f"ml-100k raw full history: {out['raw_full_history']}")
    for gamma in args.gammas:
        point = out[f"gamma_{gamma}"]
        point["auc_minus_raw"] = round(point["auc"] - out["raw_full_history"]["auc"], 4)
    spark.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=48)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--train-users", type=int, default=1000, help="synthetic users the ranker learns from")
    parser.add_argument("--synthetic-seeds", type=lambda s: [int(x) for x in s.split(",") if x], default=[0, 1, 2],
                        help="synthetic: ranker seeds, each trained on the clusters and on the raw history")
    parser.add_argument("--train-events", type=int, default=300, help="events per synthetic training user")
    parser.add_argument("--held-out", type=int, default=10, help="synthetic: positives per user (its last events)")
    parser.add_argument("--twin-epochs", type=int, default=TwinTrainConfig.epochs)
    parser.add_argument("--rerank-depth", type=int, default=RerankConfig.depth,
                        help="TIGER candidates the ranker reorders (default %(default)s)")
    parser.add_argument("--tiger-run", default=None,
                        help="ml-100k: a bench_tiger.py work folder (lakehouse/ + artifacts/) to reuse instead of "
                             "training TIGER here")
    parser.add_argument("--beauty-run", default=None,
                        help="amazon-beauty: a bench_tiger.py work folder to rerank (skipped without one)")
    add_tiger_args(parser)
    parser.set_defaults(size="cpu-bench", minutes=10.0)
    parser.add_argument("--gammas", type=lambda s: [int(g) for g in s.split(",") if g], default=[],
                        help="ml-100k: cluster-size thresholds for the AUC sweep ('' skips it)")
    parser.add_argument("--sweep-seeds", type=int, default=2, help="ml-100k: ranker seeds per point of the sweep")
    parser.add_argument("--skip-movielens", action="store_true")
    parser.add_argument("--datasets", default="ml-100k,amazon-beauty",
                        help="real datasets to run; the others keep the last results file's figures")
    parser.add_argument("--variants", type=lambda v: [x for x in v.split(",") if x], default=[],
                        help="ranker variants to train (default all); the others keep the last results' figures")
    parser.add_argument("--skip-synthetic", action="store_true", help="keep the last results file's synthetic part")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    previous = RESULTS / "twin.json"
    if args.skip_synthetic and previous.exists():
        results = {"synthetic_1e4": json.loads(previous.read_text())["synthetic_1e4"]}
    else:
        results = {"synthetic_1e4": synthetic(args)}
    results["speedup_vs_raw_history"] = results["synthetic_1e4"]["speedup_vs_raw_history"]
    results["auc_clusters_minus_raw"] = results["synthetic_1e4"]["auc_clusters_minus_raw"]
    last = json.loads(previous.read_text()) if previous.exists() else {}
    for name in ("ml-100k", "amazon-beauty"):
        kept = last.get(name, {})
        if name not in args.datasets.split(",") or (name == "ml-100k" and args.skip_movielens):
            if kept:
                results[name] = kept
            continue
        measured = real_dataset(name, args)
        if measured is not None:
            if "auc_by_gamma" in kept and "auc_by_gamma" not in measured:  # not rerun: kept, and said so
                measured["auc_by_gamma"] = {**kept["auc_by_gamma"], "measured_with": "the previous ranker recipe"}
            # a variant --variants left out keeps its last figures (this bench's variants only), saying which
            # TIGER they were measured against when it was another one
            old = {k: kept[k] for k in RANKER_VARIANTS if k in kept and k not in measured}
            for figures in old.values():
                same_tiger = (kept.get("tiger_version"), kept.get("tiger")) == (measured.get("tiger_version"), measured.get("tiger"))
                if not same_tiger and "measured_against" not in figures:
                    figures["measured_against"] = {"tiger_version": kept.get("tiger_version"), "tiger": kept.get("tiger")}
            results[name] = {**old, **measured}
    write_results("twin", results)


if __name__ == "__main__":
    main()
