"""TIGER end to end on the real datasets vs. most-popular, embedding kNN and SASRec, same run.

    python -m benchmarks.bench_tiger [--minutes 20] [--datasets amazon-beauty,ml-100k] [--seeds 0,1,2]

For each dataset the real jobs run into a scratch lakehouse: ingest ->
embeddings (ALS for amazon-beauty, which has no item text; all-MiniLM-L6-v2
over title + genres for ml-100k; --embedding-source concat adds ALS to the
text) -> RQ-VAE -> semantic IDs -> TIGER trained for a stated CPU budget
(--minutes of wall clock on this machine; the best epoch by validation
Recall@10 is kept) -> Recall@5/10, NDCG@5/10 on the test
split with full ranking, TIGER and the baselines on the same users. SASRec is
trained in the same run (dropout chosen on validation, --sasrec-minutes per
candidate). TIGER and SASRec are trained once per --seeds seed on the same
semantic IDs; each figure is the mean over seeds with its standard deviation
(`std`) and the per-seed values. The headline metrics count every held-out
user (a target without a semantic ID is a miss for every method); `with_id`
is the same over users whose target has an ID.
Also: training examples/s, candidate generation users/s (top-100, the
nightly job's setting). Writes benchmarks/results/tiger.json and tiger.png;
leaves each dataset's lakehouse and models under benchmarks/.work/ (bench_twin.py
reranks that TIGER's candidates).
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

from benchmarks.common import RESULTS, benchmark_logging, write_results
from benchmarks.datasets import DATA_DIR
from models.config import RQVAETrainConfig, SASRecConfig, TigerConfig, TigerTrainConfig
from models.device import default_device
from models.examples import Examples
from pipelines.evaluation.evaluate import EvaluateConfig, evaluate_methods
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.lakehouse.catalog import Catalog
from pipelines.lakehouse.config import LakehouseConfig, SparkConfig
from pipelines.plots import plot_method_comparison
from pipelines.presets import PRESETS
from pipelines.retrieval.inputs import load_retrieval_inputs
from pipelines.retrieval.popularity import fit_popularity
from pipelines.retrieval.retriever import FitContext
from pipelines.retrieval.sasrec import fit_sasrec
from pipelines.retrieval.serving import load_tiger, tiger_top_k
from pipelines.retrieval.training import TrainTigerJobConfig, run_train_tiger

WORK = pathlib.Path(__file__).resolve().parent / ".work"  # lakehouse + artifacts kept for bench_twin.py
RUN = dt.date(2026, 11, 24)
BENCH = PRESETS["cpu-bench"]
PAPER = {"recall@5": 0.0454, "ndcg@5": 0.0321, "recall@10": 0.0648, "ndcg@10": 0.0384}  # Beauty, 200k steps


def ingest_config(name: str, source: str | None = None):
    """The dataset's ingest and embedding configs; `source` overrides the embedding source (default: ALS for
    amazon-beauty, which ships no item text, the item text for ml-100k)."""
    from pipelines.ingest.pipeline import IngestConfig
    from pipelines.items.embedding_job import EmbedItemsConfig

    if name == "amazon-beauty":
        path = DATA_DIR / "amazon-beauty/user_sequence.txt"
        if not path.exists():
            return None
        if source not in (None, "als"):
            raise SystemExit(f"--embedding-source {source}: amazon-beauty ships no item text, only ALS applies")
        return (IngestConfig(format="sequences", dataset=name, run_date=RUN, events_paths=(str(path),)),
                EmbedItemsConfig(run_date=RUN, source="als"))
    if not (DATA_DIR / "ml-100k/u.data").exists():
        return None
    return (IngestConfig(format="movielens", dataset=name, run_date=RUN, events_paths=(str(DATA_DIR / "ml-100k/u.data"),),
                         items_paths=(str(DATA_DIR / "ml-100k/u.item"),)),
            EmbedItemsConfig(run_date=RUN, source=source or "text"))


def build_semantic_ids(spark, catalog: Catalog, store: ArtifactStore, name: str, args) -> tuple[dict, dict] | None:
    """ingest -> embeddings -> RQ-VAE -> semantic IDs (Spark); returns the RQ-VAE metrics and timings."""
    from pipelines.ingest.pipeline import run_ingest
    from pipelines.items.assignment_job import AssignSemanticIdsConfig, run_assign_semantic_ids
    from pipelines.items.embedding_job import run_embed_items
    from pipelines.items.rqvae_job import TrainRQVAEJobConfig, run_train_rqvae

    configs = ingest_config(name, args.embedding_source)
    if configs is None:
        print(f"{name}: not found under {DATA_DIR}, skipped")
        return None
    ingest, embed = configs
    timings = {}
    started = time.perf_counter()
    run_ingest(spark, catalog, ingest)
    run_embed_items(spark, catalog, embed)
    timings["ingest_and_embed_s"] = time.perf_counter() - started
    started = time.perf_counter()
    rqvae = run_train_rqvae(catalog, store, TrainRQVAEJobConfig(
        run_date=RUN, train=RQVAETrainConfig(epochs=args.rqvae_epochs, checkpoint_every=0)))
    run_assign_semantic_ids(spark, catalog, store, AssignSemanticIdsConfig(run_date=RUN))
    timings["rqvae_and_ids_s"] = time.perf_counter() - started
    return {**rqvae, "embedding_source": embed.source}, timings


def reused_semantic_ids(store: ArtifactStore) -> tuple[dict, dict]:
    """The RQ-VAE metrics of a lakehouse left by an earlier run (--reuse-ids); its TIGER models are dropped."""
    shutil.rmtree(pathlib.Path(store.root) / "tiger", ignore_errors=True)
    version = store.latest_version("rqvae")
    if version is None:
        raise SystemExit(f"--reuse-ids: no RQ-VAE under {store.root}; run this benchmark once without it")
    card = store.read_card("rqvae", version)
    return {**card["metrics"], "embedding_source": card["data"]["gold.item_embeddings"]["source"]}, {}


def tiger_configs(args, seed: int = 0) -> tuple[TigerConfig, TigerTrainConfig]:
    """The preset's model (--size) and the benchmark's schedule: the cpu-bench preset's, with the flags given."""
    preset = PRESETS[args.size].tiger
    model = dataclasses.replace(preset, dropout=preset.dropout if args.dropout is None else args.dropout,
                                causal_encoder=preset.causal_encoder if args.causal_encoder is None
                                else args.causal_encoder == "on")
    schedule = BENCH.tiger_train
    train = dataclasses.replace(
        schedule, epochs=args.max_epochs, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps,
        max_minutes=args.minutes, eval_users=args.eval_users, beam_width=args.beam_width, seed=seed,
        **{k: v for k, v in (("weight_decay", args.weight_decay), ("label_smoothing", args.label_smoothing),
                             ("patience", args.patience), ("ema_decay", args.ema_decay)) if v is not None})
    return model, train


def summarise(runs: list[dict[str, float]]) -> dict:
    """Per-seed metric dicts -> their mean (headline keys), `std` (over seeds) and `per_seed`; the `with_id/`
    keys go to `with_id`."""
    keys = [k for k in runs[0] if "@" in k and not k.endswith("_se")]
    mean = {k: round(float(np.mean([r[k] for r in runs])), 4) for k in keys}
    std = {k: round(float(np.std([r[k] for r in runs], ddof=1)) if len(runs) > 1 else 0.0, 4) for k in keys}
    headline = [k for k in keys if "/" not in k]
    return {**{k: mean[k] for k in headline},
            "with_id": {k.split("/", 1)[1]: mean[k] for k in keys if k.startswith("with_id/")},
            "std": {k: std[k] for k in headline},
            "per_seed": {k: [round(r[k], 4) for r in runs] for k in ("recall@10", "ndcg@10")}}


def train_and_evaluate(catalog: Catalog, store: ArtifactStore, args, seed: int) -> tuple[dict, str, dict]:
    """TIGER and SASRec trained with `seed` (one selection rule, models/selection.py); every method's test
    metrics with the one seen set; the TIGER version and its card."""
    model, train = tiger_configs(args, seed)
    version = f"bench-seed{seed}"
    run_train_tiger(catalog, store, TrainTigerJobConfig(run_date=RUN, model=model, train=train, version=version),
                    promote=False)
    inputs = load_retrieval_inputs(catalog)
    context = FitContext(catalog, store, inputs, RUN, minutes=args.sasrec_minutes, seed=seed, version=version,
                         promote=False)
    names = ["tiger", "popularity"]
    fit_popularity(context)
    if args.sasrec_minutes:
        fit_sasrec(context, SASRecConfig(eval_users=args.eval_users))
        names.append("sasrec")
    evaluation = evaluate_methods(catalog, store, EvaluateConfig(
        run_date=RUN, retrievers=tuple(names), versions=tuple((n, version) for n in names), nightly=False), inputs)
    results = evaluation.results
    if "sasrec" in results:
        results["sasrec"]["dropout"] = store.read_card("sasrec", version)["metrics"]["dropout"]
    return results, version, store.read_card("tiger", version)


def run_dataset(spark, scratch: pathlib.Path, name: str, args) -> dict | None:
    catalog = Catalog(LakehouseConfig(root=str(scratch / name / "lakehouse")))
    store = ArtifactStore(root=str(scratch / name / "artifacts"))
    built = reused_semantic_ids(store) if args.reuse_ids else build_semantic_ids(spark, catalog, store, name, args)
    if built is None:
        return None
    rqvae, timings = built

    per_seed = [train_and_evaluate(catalog, store, args, seed) for seed in args.seeds]
    results, version, card = per_seed[0]
    timings["tiger_train_s"] = float(np.mean([c["metrics"]["train_seconds"] for _, _, c in per_seed]))
    inputs = load_retrieval_inputs(catalog)
    tiger_model, _, _ = load_tiger(store, version, inputs.rqvae_version, None)
    serve = inputs.sequences.serve
    sample = np.random.default_rng(0).permutation(len(serve))[: args.candidate_users]
    started = time.perf_counter()
    tiger_top_k(tiger_model, inputs.index, Examples(serve.users[sample], serve.histories[sample], serve.targets[sample]),
                100, None, True, batch_size=32, progress=False,
                exclude_items=[inputs.sequences.serve_seen[i] for i in sample])
    candidate_users_per_s = len(sample) / (time.perf_counter() - started)

    methods = {m: summarise([r[m] for r, _, _ in per_seed]) for m in results}
    tiger = methods.pop("tiger")
    model, _ = tiger_configs(args)
    out = {
        "items": len(inputs.index.item_ids), "users": len(serve), "test_users": int(results["tiger"]["users"]),
        "test_users_with_id": len(inputs.sequences.test), "seeds": list(args.seeds),
        "embedding_source": rqvae["embedding_source"],
        "semantic_ids": {k: round(float(rqvae[k]), 4) for k in ("min_level_utilization", "unique_3code_fraction",
                                                                  "largest_collision_group")},
        "tiger": tiger,
        "baselines": methods,
        "tiger_beats_baselines": beats_baselines(tiger, methods),
        "sasrec_dropout_by_seed": [r["sasrec"]["dropout"] for r, _, _ in per_seed if "sasrec" in r],
        "training": {
            "model": dataclasses.asdict(model), "parameters": card["parameters"], "device": card["device"],
            "schedule": {k: v for k, v in dataclasses.asdict(tiger_configs(args)[1]).items() if k != "seed"},
            "budget_minutes": args.minutes, "epochs_done": [c["metrics"]["epochs"] for _, _, c in per_seed],
            "best_epoch": [c["metrics"]["best_epoch"] for _, _, c in per_seed],
            "train_examples": card["metrics"]["train_examples"],
            "training_examples_per_s": round(card["metrics"]["examples_per_s"], 1),
            "valid_recall@10_by_epoch": [[round(e["valid_recall@10"], 4) for e in c["history"]] for _, _, c in per_seed],
            "valid_recall@10_se": round(card["history"][-1].get("valid_recall@10_se", 0.0), 4),
        },
        "candidate_generation_users_per_s": round(candidate_users_per_s, 2),
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }
    steps_per_epoch = max(1, card["metrics"]["steps"] // max(1, card["metrics"]["epochs"]))
    out["training"]["paper_schedule"] = {
        "steps": 200_000, "batch_size": 256,
        "hours_at_measured_rate": round(200_000 * 256 / card["metrics"]["examples_per_s"] / 3600, 1),
        "epochs_equivalent": round(200_000 / steps_per_epoch, 1),
    }
    print(f"{name}: TIGER {tiger} | " + " | ".join(f"{m} {r}" for m, r in out["baselines"].items()))
    return out


def keep_earlier_sasrec(result: dict, earlier: dict | None) -> dict:
    """With --sasrec-minutes 0, SASRec's figures from the dataset's last run (same split: SASRec does not read
    the semantic IDs) stay beside the new TIGER, marked as such, and TIGER is still compared against them."""
    sasrec = (earlier or {}).get("baselines", {}).get("sasrec")
    if earlier is None or sasrec is None or "sasrec" in result["baselines"] or earlier["users"] != result["users"]:
        return result
    result["baselines"]["sasrec"] = {**sasrec, "measured_in_an_earlier_run": True}
    result["sasrec_dropout_by_seed"] = earlier.get("sasrec_dropout_by_seed", [])
    result["tiger_beats_baselines"] = beats_baselines(result["tiger"], result["baselines"])
    return result


def beats_baselines(tiger: dict, baselines: dict) -> bool:
    """TIGER above every baseline on both Recall@10 and NDCG@10."""
    return all(tiger[k] > r[k] for r in baselines.values() for k in ("recall@10", "ndcg@10"))


def mark_earlier_runs(datasets: dict) -> dict:
    """Entries kept from a results file written before SASRec, seeds and the all-users metrics say so."""
    for entry in datasets.values():
        if "seeds" not in entry:
            entry["measured_before"] = ("SASRec, seeds and the all-users metrics: one seed, popularity and kNN "
                                        "only, metrics over the users whose target has an ID")
    return datasets


def add_tiger_args(parser: argparse.ArgumentParser) -> None:
    """The benchmark's TIGER flags, defaults from the cpu-bench preset (pipelines/presets.py)."""
    schedule = BENCH.tiger_train
    parser.add_argument("--minutes", type=float, default=20.0, help="TIGER training budget per dataset, wall-clock minutes (max 60)")
    parser.add_argument("--size", choices=["paper", "cpu-bench"], default="paper", help="the preset's TIGER model")
    parser.add_argument("--max-epochs", type=int, default=schedule.epochs)
    parser.add_argument("--batch-size", type=int, default=schedule.batch_size)
    parser.add_argument("--lr", type=float, default=schedule.lr)
    parser.add_argument("--warmup-steps", type=int, default=schedule.warmup_steps)
    parser.add_argument("--eval-users", type=int, default=schedule.eval_users,
                        help="validation users scored per epoch (default: the preset's; none = all)")
    parser.add_argument("--patience", type=int, default=None, help="default: the preset's")
    parser.add_argument("--label-smoothing", type=float, default=None, help="default: the preset's")
    parser.add_argument("--weight-decay", type=float, default=None, help="default: the preset's")
    parser.add_argument("--ema-decay", type=float, default=None,
                        help="score and keep a moving average of the weights with this decay per step "
                             "(default: the preset's)")
    parser.add_argument("--dropout", type=float, default=None, help="TIGER's dropout (default: the preset's)")
    parser.add_argument("--causal-encoder", choices=["on", "off"], default=None,
                        help="train on windows with a causal encoder, or on prefixes (default: the preset's)")
    parser.add_argument("--seeds", type=lambda v: [int(s) for s in v.split(",")], default=[0, 1, 2],
                        help="TIGER and SASRec are trained once per seed; figures are means with their spread")
    parser.add_argument("--sasrec-minutes", type=float, default=SASRecConfig.max_minutes,
                        help="SASRec's budget per dropout candidate (0: no SASRec)")
    parser.add_argument("--beam-width", type=int, default=schedule.beam_width)
    parser.add_argument("--rqvae-epochs", type=int, default=BENCH.rqvae_epochs)
    parser.add_argument("--embedding-source", choices=["text", "als", "concat"], default=None,
                        help="item vectors the semantic IDs come from (default: ALS for amazon-beauty, text for ml-100k)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="amazon-beauty,ml-100k")
    add_tiger_args(parser)
    parser.add_argument("--candidate-users", type=int, default=300)
    parser.add_argument("--reuse-ids", action="store_true",
                        help="train TIGER on the semantic IDs an earlier run left in benchmarks/.work/ (no Spark: "
                             "what a GPU machine without Java runs)")
    parser.add_argument("--results", default=None,
                        help="results name (default: tiger, or tiger_<device> when not on the CPU)")
    args = parser.parse_args()
    benchmark_logging()

    device = default_device(None).type
    results_name = args.results or ("tiger" if device == "cpu" else f"tiger_{device}")
    spark = None
    if not args.reuse_ids:
        from pipelines.lakehouse.spark import build_spark_session

        spark = build_spark_session(SparkConfig(app_name="bench-tiger"))
    previous = RESULTS / f"{results_name}.json"
    datasets = json.loads(previous.read_text()).get("datasets", {}) if previous.exists() else {}
    for name in args.datasets.split(","):
        if not args.reuse_ids:
            shutil.rmtree(WORK / name, ignore_errors=True)  # each run starts from an empty lakehouse
        result = run_dataset(spark, WORK, name, args)
        if result is not None:
            datasets[name] = keep_earlier_sasrec(result, datasets.get(name))
    if spark is not None:
        spark.stop()
    payload: dict = {"datasets": mark_earlier_runs(datasets)}
    if "amazon-beauty" in datasets:  # the headline shape: Beauty at the top level
        beauty = datasets["amazon-beauty"]
        payload = {"tiger": beauty["tiger"], "baselines": beauty["baselines"], "paper_beauty": PAPER,
                   "training_examples_per_s": beauty["training"]["training_examples_per_s"],
                   "candidate_generation_users_per_s": beauty["candidate_generation_users_per_s"], **payload}
    write_results(results_name, payload)
    plot_method_comparison(
        {f"{d} {m}": {k: v for k, v in r.items() if "@" in k}
         for d, res in datasets.items() for m, r in (("tiger", res["tiger"]), *res["baselines"].items())},
        RESULTS / f"{results_name}.png", f"TIGER vs. baselines (test split, {device})")


if __name__ == "__main__":
    main()
