"""TIGER with the dense head (LIGER-style) against today's TIGER, SASRec and the baselines, same run.

    python -m benchmarks.bench_tiger_dense [--datasets amazon-beauty,ml-100k]

Reuses what `bench_nightly.py` left under benchmarks/.work/nightly/<dataset>/ (the
same lakehouse, split and semantic IDs, and its TIGER, SASRec and popularity of
every seed): for each of those seeds it trains TIGER with the dense head under
the same budget as that seed's TIGER (the card's max_minutes), then scores
every method on the same test users with the one seen set. Paired per-user
differences (dense minus TIGER, dense minus SASRec) carry their standard
error. Writes `datasets.<name>` of benchmarks/results/tiger.json (and the
Beauty headline at its top level).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil

import numpy as np

from benchmarks.bench_tiger import PAPER, RUN, WORK, add_tiger_args, tiger_configs
from benchmarks.common import RESULTS, benchmark_logging, write_results
from pipelines.evaluation.evaluate import EvaluateConfig, Evaluation, evaluate_methods
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.lakehouse.catalog import Catalog
from pipelines.lakehouse.config import LakehouseConfig
from pipelines.presets import DENSE_HEAD
from pipelines.retrieval.inputs import load_retrieval_inputs
from pipelines.retrieval.training import TrainTigerJobConfig, run_train_tiger

METRICS = ("recall@5", "recall@10", "ndcg@5", "ndcg@10")

BASELINES = ("sasrec", "popularity", "knn")


def seeds_of(store: ArtifactStore) -> list[int]:
    """The seeds bench_nightly trained TIGER and SASRec with (versions seed<N>)."""
    tiger = {v for v in store.versions("tiger") if v.startswith("seed")}
    sasrec = {v for v in store.versions("sasrec") if v.startswith("seed")}
    return sorted(int(v[4:]) for v in tiger & sasrec)


def one_seed(catalog: Catalog, store: ArtifactStore, args, seed: int) -> dict:
    baseline = store.read_card("tiger", f"seed{seed}")
    minutes = baseline["config"]["train"]["max_minutes"]
    model, train = tiger_configs(args, seed)
    model = dataclasses.replace(model, **DENSE_HEAD)
    train = dataclasses.replace(train, max_minutes=minutes)
    dense_version = f"dense-seed{seed}"
    shutil.rmtree(store.directory("tiger", dense_version), ignore_errors=True)  # a fresh run, never a resume
    run_train_tiger(catalog, store, TrainTigerJobConfig(run_date=RUN, model=model, train=train, version=dense_version),
                    promote=False)
    inputs = load_retrieval_inputs(catalog)
    version = f"seed{seed}"
    today = evaluate_methods(catalog, store, EvaluateConfig(
        run_date=RUN, retrievers=("tiger", *BASELINES[:2]), versions=tuple((n, version) for n in ("tiger", *BASELINES[:2])),
        nightly=False), inputs)
    dense = evaluate_methods(catalog, store, EvaluateConfig(
        run_date=RUN, retrievers=("tiger",), versions=(("tiger", dense_version),), knn=False, nightly=False), inputs)
    card = store.read_card("tiger", dense_version)
    return {"today": today, "dense": dense, "minutes": minutes, "epochs": card["metrics"]["epochs"],
            "baseline_epochs": baseline["metrics"]["epochs"], "beam_weight": card["dense"]["beam_weight"],
            "cold_items": card["dense"]["cold_items"]}


def paired(a: Evaluation, method_a: str, b: Evaluation, method_b: str) -> dict[str, float]:
    """Mean per-user difference a - b and its standard error, NDCG@10 and Recall@10, on the same users."""
    out = {}
    for metric in ("ndcg@10", "recall@10"):
        diff = a.per_user[method_a][metric] - b.per_user[method_b][metric]
        out[metric] = float(diff.mean())
        out[f"{metric}_se"] = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return out


def summarise(values: list[dict[str, float]]) -> dict:
    keys = [k for k in values[0] if k in METRICS or k.endswith("_se") and k[:-3] in METRICS]
    return {**{k: round(float(np.mean([v[k] for v in values])), 4) for k in keys},
            "std": {k: round(float(np.std([v[k] for v in values], ddof=1)), 4) if len(values) > 1 else 0.0
                    for k in METRICS if k in keys},
            "per_seed": {k: [round(v[k], 4) for v in values] for k in ("recall@10", "ndcg@10")}}


def mean_diff(values: list[dict[str, float]]) -> dict[str, float]:
    """Seeds' paired differences averaged; the standard error is the mean of the seeds' (each is over every
    test user; averaging seeds does not shrink per-user noise much, as the users are the same)."""
    return {k: round(float(np.mean([v[k] for v in values])), 5) for k in values[0]}


def run_dataset(name: str, args) -> dict | None:
    root = WORK / "nightly" / name
    if not (root / "artifacts" / "tiger").exists():
        print(f"{name}: no {root}; run `python -m benchmarks.bench_nightly --datasets {name}` first")
        return None
    catalog = Catalog(LakehouseConfig(root=str(root / "lakehouse")))
    store = ArtifactStore(root=str(root / "artifacts"))
    seeds = seeds_of(store) if args.seeds is None else args.seeds
    runs = [one_seed(catalog, store, args, seed) for seed in seeds]
    headline = {m: [{k: r["today"].results[m][k] for k in (*METRICS, "ndcg@10_se", "recall@10_se")} for r in runs]
                for m in ("tiger", *BASELINES)}
    dense = [{k: r["dense"].results["tiger"][k] for k in (*METRICS, "ndcg@10_se", "recall@10_se")} for r in runs]
    out = {
        "seeds": seeds, "minutes_per_model": runs[0]["minutes"], "test_users": runs[0]["today"].users,
        "tiger": summarise(headline["tiger"]),
        "tiger_dense": {**summarise(dense), "beam_weight_by_seed": [r["beam_weight"] for r in runs],
                        "epochs_by_seed": [r["epochs"] for r in runs]},
        "baselines": {m: summarise(headline[m]) for m in BASELINES},
        "tiger_dense_minus_tiger": mean_diff([paired(r["dense"], "tiger", r["today"], "tiger") for r in runs]),
        "tiger_dense_minus_sasrec": mean_diff([paired(r["dense"], "tiger", r["today"], "sasrec") for r in runs]),
        "tiger_epochs_by_seed": [r["baseline_epochs"] for r in runs],
        "cold_items_in_training": runs[0]["cold_items"],
        "models_from": "bench_nightly.py (same lakehouse, split, semantic IDs, TIGER, SASRec, popularity)",
    }
    gain = out["tiger_dense_minus_tiger"]
    out["dense_beats_tiger_by_2_se"] = bool(gain["ndcg@10"] > 2 * gain["ndcg@10_se"])
    print(f"{name}: TIGER {out['tiger']['ndcg@10']} dense {out['tiger_dense']['ndcg@10']} SASRec "
          f"{out['baselines']['sasrec']['ndcg@10']} | dense - TIGER {gain}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="amazon-beauty,ml-100k")
    add_tiger_args(parser)
    parser.set_defaults(size="cpu-bench", seeds=None)
    args = parser.parse_args()
    benchmark_logging()
    previous = RESULTS / "tiger.json"
    payload = json.loads(previous.read_text()) if previous.exists() else {}
    payload.pop("written", None)
    payload.pop("machine", None)
    datasets = payload.setdefault("datasets", {})
    for name in args.datasets.split(","):
        result = run_dataset(name, args)
        if result is not None:
            datasets[name] = result
    if "amazon-beauty" in datasets and "tiger_dense" in datasets["amazon-beauty"]:
        beauty = datasets["amazon-beauty"]
        payload |= {"tiger": beauty["tiger"], "tiger_dense": beauty["tiger_dense"], "baselines": beauty["baselines"],
                    "paper_beauty": PAPER}
    write_results("tiger", payload)


if __name__ == "__main__":
    main()
