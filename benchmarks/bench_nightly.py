"""Tonight's list against every retriever alone: TIGER, SASRec, popularity, kNN and `nightly` (the union of
TIGER's and SASRec's top-K ordered by the TWIN-V2 ranker's gated fusion), evaluated fairly.

    python -m benchmarks.bench_nightly [--datasets ml-100k,amazon-beauty] [--seeds 0,1,2] [--minutes 5]

Per dataset the real jobs build a scratch lakehouse once (ingest -> item vectors -> RQ-VAE -> semantic
IDs -> TWIN-V2 clusters without held-out events; bench_tiger.py's recipe), then per seed: TIGER (the
cpu-bench preset), SASRec and the ranker each get the same wall-clock budget (--minutes; SASRec's is split
over its dropout candidates) and the same selection rule (validation NDCG@10 on the same users), popularity is
counted, the ranker trains on the union, and `evaluate` scores every method on every test user with the one
seen set (all of the user's items before the target). Reported per method: Recall/NDCG@5/10, mean and
spread over seeds (`std` null for one seed); `nightly_minus_best_single` with the paired per-user standard
error of the NDCG@10 difference (first seed's users; `per_seed` for all); the union's recall at its full
depth, which bounds what the ranker can do. --datasets runs a part and merges it into the last results.
Writes benchmarks/results/nightly.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time

import numpy as np

from benchmarks.bench_tiger import RUN, WORK, add_tiger_args, build_semantic_ids, tiger_configs
from benchmarks.common import RESULTS, benchmark_logging, write_results
from models.config import SASRecConfig, TwinTrainConfig
from pipelines.evaluation.evaluate import NIGHTLY, EvaluateConfig, evaluate_methods
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.lakehouse.catalog import Catalog
from pipelines.lakehouse.config import LakehouseConfig, SparkConfig
from pipelines.ranking.config import RerankConfig
from pipelines.ranking.training import TrainTwinJobConfig, run_train_twin
from pipelines.retrieval.inputs import load_retrieval_inputs
from pipelines.retrieval.popularity import fit_popularity
from pipelines.retrieval.retriever import FitContext
from pipelines.retrieval.sasrec import fit_sasrec
from pipelines.retrieval.training import TrainTigerJobConfig, run_train_tiger

HEADLINE = ("recall@5", "recall@10", "ndcg@5", "ndcg@10")
SINGLES = ("tiger", "sasrec", "popularity", "knn")


def one_seed(catalog: Catalog, store: ArtifactStore, args, seed: int) -> dict:
    """Every model trained with `seed` (served, so the nightly flow picks them up); every method's metrics."""
    started = time.perf_counter()
    model, train = tiger_configs(args, seed)
    run_train_tiger(catalog, store, TrainTigerJobConfig(run_date=RUN, model=model, train=train,
                                                        version=f"seed{seed}"))
    tiger_s = time.perf_counter() - started
    inputs = load_retrieval_inputs(catalog)
    context = FitContext(catalog, store, inputs, RUN, minutes=args.minutes / len(SASRecConfig.dropout_grid),
                         seed=seed, version=f"seed{seed}")
    fit_popularity(context)
    started = time.perf_counter()
    fit_sasrec(context, SASRecConfig(eval_users=args.eval_users))
    sasrec_s = time.perf_counter() - started
    started = time.perf_counter()
    run_train_twin(catalog, store, TrainTwinJobConfig(
        run_date=RUN, train=TwinTrainConfig(epochs=args.twin_epochs, max_minutes=args.minutes, seed=seed), version=f"seed{seed}",
        rerank=RerankConfig(depth=args.depth)))
    twin_s = time.perf_counter() - started
    evaluation = evaluate_methods(catalog, store, EvaluateConfig(run_date=RUN, plot_dir=str(WORK / "plots")), inputs)
    best = max((m for m in SINGLES if m in evaluation.results), key=lambda m: evaluation.results[m]["ndcg@10"])
    diff = {metric: evaluation.paired(NIGHTLY, best, metric) for metric in ("ndcg@10", "recall@10")}
    card = store.read_card("twin", f"seed{seed}")
    return {
        "methods": {m: {k: r[k] for k in (*HEADLINE, "ndcg@10_se", "recall@10_se")}
                    for m, r in evaluation.results.items()},
        "best_single": best,
        "nightly_minus_best_single": {"ndcg@10": diff["ndcg@10"][0], "ndcg@10_se": diff["ndcg@10"][1],
                                      "recall@10": diff["recall@10"][0], "recall@10_se": diff["recall@10"][1]},
        "union_recall@depth": evaluation.results[NIGHTLY]["union_recall@depth"],
        "union_depth": evaluation.results[NIGHTLY]["union_depth"],
        "fusion": card["fusion"],
        "ranker_test_auc": card["metrics"]["test_auc"],
        "users": evaluation.users,
        "seconds": {"tiger": round(tiger_s, 1), "sasrec": round(sasrec_s, 1), "twin": round(twin_s, 1)},
    }


def summarise(runs: list[dict]) -> dict:
    methods = {}
    for method in runs[0]["methods"]:
        values = {k: [r["methods"][method][k] for r in runs] for k in HEADLINE}
        methods[method] = {**{k: round(float(np.mean(v)), 4) for k, v in values.items()},
                           "std": {k: round(float(np.std(v, ddof=1)), 4) if len(v) > 1 else None
                                   for k, v in values.items()},
                           "ndcg@10_se": round(runs[0]["methods"][method]["ndcg@10_se"], 4)}
    first = runs[0]["nightly_minus_best_single"]
    return {
        "users": runs[0]["users"], "seeds": len(runs), "methods": methods,
        "nightly_minus_best_single": {"best_single": runs[0]["best_single"],
                                      **{k: round(v, 5) for k, v in first.items()},
                                      "standard_errors": round(first["ndcg@10"] / first["ndcg@10_se"], 2)
                                      if first["ndcg@10_se"] else None,
                                      "per_seed": [{"best_single": r["best_single"],
                                                    **{k: round(v, 5) for k, v in r["nightly_minus_best_single"].items()}}
                                                   for r in runs]},
        "union_recall@depth": round(float(np.mean([r["union_recall@depth"] for r in runs])), 4),
        "union_depth": runs[0]["union_depth"],
        "fusion_by_seed": [r["fusion"] for r in runs],
        "ranker_test_auc": [round(r["ranker_test_auc"], 4) for r in runs],
        "seconds_by_seed": [r["seconds"] for r in runs],
    }


def run_dataset(spark, name: str, args) -> dict | None:
    from pipelines.behavior.clustering_job import BehaviorClusterConfig, run_cluster_behaviors

    root = WORK / "nightly" / name
    catalog = Catalog(LakehouseConfig(root=str(root / "lakehouse")))
    store = ArtifactStore(root=str(root / "artifacts"))
    if args.reuse_ids and (root / "lakehouse" / "gold" / "user_clusters").exists() and (root / "artifacts" / "rqvae").exists():
        # the last run's tables and RQ-VAE; every trained model goes, so no seed resumes a checkpoint
        for trained in (root / "artifacts").iterdir():
            if trained.name != "rqvae":
                shutil.rmtree(trained)
        print(f"{name}: reusing {root}'s tables, semantic IDs and clusters")
    else:
        shutil.rmtree(root, ignore_errors=True)
        if build_semantic_ids(spark, catalog, store, name, args) is None:
            return None
        run_cluster_behaviors(spark, catalog, BehaviorClusterConfig(run_date=RUN, holdout="valid_test"))
    runs = [one_seed(catalog, store, args, seed) for seed in args.seeds]
    out = {**summarise(runs), "minutes_per_model": args.minutes}
    print(f"{name}: " + json.dumps({m: r["ndcg@10"] for m, r in out["methods"].items()}) + " "
          + json.dumps(out["nightly_minus_best_single"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="ml-100k,amazon-beauty")
    add_tiger_args(parser)
    parser.set_defaults(minutes=5.0, size="cpu-bench")
    parser.add_argument("--depth", type=int, default=RerankConfig.depth, help="candidates per retriever")
    parser.add_argument("--twin-epochs", type=int, default=TwinTrainConfig.epochs)
    parser.add_argument("--reuse-ids", action="store_true",
                        help="keep the last run's lakehouse (events, semantic IDs, clusters) and RQ-VAE; retrain "
                             "every model")
    args = parser.parse_args()
    benchmark_logging()
    from pipelines.lakehouse.spark import build_spark_session

    spark = build_spark_session(SparkConfig(app_name="bench-nightly"))
    previous = RESULTS / "nightly.json"
    datasets = json.loads(previous.read_text()).get("datasets", {}) if previous.exists() else {}
    for name in args.datasets.split(","):
        result = run_dataset(spark, name, args)
        if result is not None:
            datasets[name] = result
    spark.stop()
    write_results("nightly", {"seen_rule": "all_items_before_target", "datasets": datasets,
                              "config": {k: v for k, v in vars(args).items() if k != "datasets"}})


if __name__ == "__main__":
    main()
