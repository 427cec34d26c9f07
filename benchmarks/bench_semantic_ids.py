"""Semantic IDs: embedding throughput and RQ-VAE quality vs. baselines measured in the same run.

    python -m benchmarks.bench_semantic_ids [--embed-texts 50000] [--epochs 600] [--parts embed,rqvae]

(one part alone keeps the other's figures from the last results file)

1. Throughput of the Spark embedding job (mapInPandas, one model per Python
   worker) vs. SentenceTransformer.encode on the same texts in one process
   (target: ratio >= 0.85). Texts: MovieLens-100K titles + genres, repeated.
2. RQ-VAE on the real pipeline's embeddings: ALS vectors of amazon-beauty
   (no item text) and all-MiniLM-L6-v2 vectors of ml-100k (titles, genres),
   each ingested and embedded by the jobs into a scratch lakehouse. Against
   faiss ResidualQuantizer (3 x 8 bits) and random IDs: per-level code
   utilisation (target >= 0.95 on Beauty), unique 3-code fraction (target
   >= 0.90), share of each item's 10 nearest neighbours that share its first
   code (higher than both baselines), and CPU training time. A partition with
   fewer or less even first codes shares more by chance, so next to each share
   stand its chance level (the probability that a random other item shares
   the code) and the share over it. Every method runs
   under --seeds seeds and the figures are their means (per-seed values kept):
   on ml-100k one seed moves the neighbour share by about as much as the
   methods differ.
Writes benchmarks/results/semantic_ids.json and semantic_ids_<dataset>.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import pathlib
import tempfile
import time

import numpy as np
import pandas as pd

from benchmarks.common import RESULTS, write_results
from benchmarks.datasets import DATA_DIR
from models.config import RQVAEConfig, RQVAETrainConfig
from pipelines.ingest.pipeline import IngestConfig, run_ingest
from pipelines.items.embedding_job import EmbedItemsConfig, embed_items_spark, run_embed_items
from pipelines.items.rqvae_job import load_item_vectors
from pipelines.items.semantic_ids import (
    chance_prefix_share,
    code_metrics,
    code_usage,
    neighbour_prefix_share,
)
from pipelines.items.text_embeddings import TextEmbeddingConfig, item_text, load_model
from pipelines.lakehouse.catalog import Catalog
from pipelines.lakehouse.config import LakehouseConfig, SparkConfig
from pipelines.plots import plot_code_usage

RUN = dt.date(2026, 11, 24)
CODEBOOK = 256


def movielens_items() -> pd.DataFrame:
    genres = [g.split("|")[0] for g in (DATA_DIR / "ml-100k/u.genre").read_text(encoding="latin-1").split("\n") if g]
    raw = pd.read_csv(DATA_DIR / "ml-100k/u.item", sep="|", header=None, encoding="latin-1")
    flags = raw.iloc[:, 5:5 + len(genres)].to_numpy()
    return pd.DataFrame({
        "title": raw[1].astype(str),
        "categories": [[g for g, on in zip(genres, row, strict=True) if on] for row in flags],
    })


def embed_throughput(spark, n_texts: int) -> dict:
    base = movielens_items()
    items = base.iloc[np.arange(n_texts) % len(base)].reset_index(drop=True)
    items = items.assign(item_id=[f"i{k}" for k in range(n_texts)], content_hash="x", brand=None,
                         description=None, price=None)
    config = TextEmbeddingConfig()
    texts = [item_text(row, config.template) for row in items.to_dict("records")]

    in_process = dataclasses.replace(config, torch_threads=None)  # one process: all cores
    model = load_model(in_process)
    model.encode(texts[:256], batch_size=config.batch_size)  # warm-up
    started = time.perf_counter()
    model.encode(texts, batch_size=config.batch_size, normalize_embeddings=True, show_progress_bar=False)
    encode_seconds = time.perf_counter() - started

    frame = spark.createDataFrame(
        items[["item_id", "content_hash", "title", "categories"]],
        "item_id string, content_hash string, title string, categories array<string>",
    ).selectExpr("*", "cast(null as string) brand", "cast(null as string) description", "cast(null as double) price")
    frame = frame.localCheckpoint()
    started = time.perf_counter()
    embed_items_spark(frame, config, spark.sparkContext.defaultParallelism).write.format("noop").mode(
        "overwrite").save()
    spark_seconds = time.perf_counter() - started
    out = {
        "texts": n_texts,
        "encode_texts_per_s": n_texts / encode_seconds,
        "spark_job_texts_per_s": n_texts / spark_seconds,
        "embed_throughput_ratio": round(encode_seconds / spark_seconds, 3),
    }
    print(f"embedding {n_texts:,} texts: encode {out['encode_texts_per_s']:,.0f}/s, Spark job "
          f"{out['spark_job_texts_per_s']:,.0f}/s -> ratio {out['embed_throughput_ratio']:.2f} (target >= 0.85)")
    return out


def ingest_and_embed(spark, root: pathlib.Path, name: str) -> np.ndarray | None:
    catalog = Catalog(LakehouseConfig(root=str(root / name)))
    if name == "amazon-beauty":
        path = DATA_DIR / "amazon-beauty/user_sequence.txt"
        if not path.exists():
            return None
        ingest = IngestConfig(format="sequences", dataset=name, run_date=RUN, events_paths=(str(path),))
        embed = EmbedItemsConfig(run_date=RUN, source="als")
    else:
        if not (DATA_DIR / "ml-100k/u.data").exists():
            return None
        ingest = IngestConfig(format="movielens", dataset=name, run_date=RUN,
                              events_paths=(str(DATA_DIR / "ml-100k/u.data"),),
                              items_paths=(str(DATA_DIR / "ml-100k/u.item"),))
        embed = EmbedItemsConfig(run_date=RUN, source="text")
    run_ingest(spark, catalog, ingest)
    started = time.perf_counter()
    run_embed_items(spark, catalog, embed)
    print(f"{name}: {embed.source} embeddings in {time.perf_counter() - started:.0f}s")
    return load_item_vectors(catalog).vectors


def quality(name: str, vectors: np.ndarray, epochs: int, seeds: int) -> dict:
    import faiss

    from models.rqvae import encode_codes, train_rqvae

    x = np.ascontiguousarray(vectors, dtype=np.float32).copy()
    faiss.normalize_L2(x)  # all three methods see unit vectors, as the RQ-VAE does
    runs: dict[str, list[dict]] = {"rqvae": [], "faiss_rq": [], "random": []}
    seconds: dict[str, list[float]] = {"rqvae": [], "faiss_rq": []}
    for seed in range(seeds):
        started = time.perf_counter()
        model, _ = train_rqvae(x, RQVAEConfig(input_dim=x.shape[1]),
                               RQVAETrainConfig(epochs=epochs, checkpoint_every=0, seed=seed))
        seconds["rqvae"].append(time.perf_counter() - started)
        ours = encode_codes(model, x, normalize=True)
        started = time.perf_counter()
        rq = faiss.ResidualQuantizer(x.shape[1], 3, 8)
        rq.cp.seed = 1234 + seed  # faiss's default seed is 1234
        rq.train(x)
        faiss_codes = rq.compute_codes(x).astype(np.int32)  # 3 x 8 bits: one byte per level
        seconds["faiss_rq"].append(time.perf_counter() - started)
        random_codes = np.random.default_rng(seed).integers(0, CODEBOOK, size=ours.shape).astype(np.int32)
        for method, codes in (("rqvae", ours), ("faiss_rq", faiss_codes), ("random", random_codes)):
            m = code_metrics(codes, CODEBOOK)
            m["neighbour_first_code_share@10"] = neighbour_prefix_share(x, codes[:, 0], k=10)
            m["chance_first_code_share"] = chance_prefix_share(codes[:, 0])
            m["neighbour_share_over_chance"] = m["neighbour_first_code_share@10"] / m["chance_first_code_share"]
            runs[method].append(m)
        if seed == 0:
            plot_code_usage(code_usage(ours, CODEBOOK), RESULTS / f"semantic_ids_{name}.png",
                            f"{name}: RQ-VAE code usage ({len(x):,} items)")

    out: dict = {"items": len(x), "dim": x.shape[1], "rqvae_epochs": epochs, "seeds": seeds,
                 "rqvae_train_seconds_cpu": round(float(np.mean(seconds["rqvae"])), 1),
                 "faiss_rq_train_seconds": round(float(np.mean(seconds["faiss_rq"])), 1)}
    for method, per_seed in runs.items():
        out[method] = {k: round(float(np.mean([m[k] for m in per_seed])), 4) for k in per_seed[0]}
        out[method]["neighbour_first_code_share@10_by_seed"] = [
            round(m["neighbour_first_code_share@10"], 4) for m in per_seed]
    r = out["rqvae"]
    out["min_level_utilization"] = r["min_level_utilization"]
    out["unique_3code_fraction"] = r["unique_3code_fraction"]
    out["neighbour_share_beats_baselines"] = bool(
        r["neighbour_first_code_share@10"] > max(out["faiss_rq"]["neighbour_first_code_share@10"],
                                                 out["random"]["neighbour_first_code_share@10"]))
    print(f"{name}: {len(x):,} items, RQ-VAE {out['rqvae_train_seconds_cpu']:.0f}s CPU per seed; means over "
          f"{seeds} seeds: utilisation per level {[r[f'level{i}_utilization'] for i in range(3)]}, unique 3-code "
          f"{r['unique_3code_fraction']:.3f}, neighbour share {r['neighbour_first_code_share@10']:.4f} "
          f"{r['neighbour_first_code_share@10_by_seed']} (faiss RQ {out['faiss_rq']['neighbour_first_code_share@10']:.4f} "
          f"{out['faiss_rq']['neighbour_first_code_share@10_by_seed']}, random "
          f"{out['random']['neighbour_first_code_share@10']:.4f}); over chance {r['neighbour_share_over_chance']:.1f} "
          f"(faiss RQ {out['faiss_rq']['neighbour_share_over_chance']:.1f}); faiss RQ unique "
          f"{out['faiss_rq']['unique_3code_fraction']:.3f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embed-texts", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=RQVAETrainConfig.epochs)
    parser.add_argument("--parts", default="embed,rqvae", help="what to run: embed, rqvae or both (default %(default)s)")
    parser.add_argument("--seeds", type=int, default=3, help="runs of each quantizer; figures are means (default %(default)s)")
    parser.add_argument("--datasets", default="amazon-beauty,ml-100k")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    previous = RESULTS / "semantic_ids.json"
    results: dict = json.loads(previous.read_text()) if previous.exists() and parts != {"embed", "rqvae"} else {}
    results.pop("machine", None)

    from pipelines.lakehouse.spark import build_spark_session

    spark = build_spark_session(SparkConfig(app_name="bench-semantic-ids"))
    if "embed" in parts:
        results["embedding"] = embed_throughput(spark, args.embed_texts)
        results["embed_throughput_ratio"] = results["embedding"]["embed_throughput_ratio"]
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.datasets.split(",") if "rqvae" in parts else ():
            vectors = ingest_and_embed(spark, pathlib.Path(scratch), name)
            if vectors is None:
                print(f"{name}: not found under {DATA_DIR}, skipped")
                continue
            results[name] = quality(name, vectors, args.epochs, args.seeds)
    if "amazon-beauty" in results and "rqvae" in parts:
        beauty = results["amazon-beauty"]
        results["min_level_utilization"] = beauty["min_level_utilization"]
        results["unique_3code_fraction"] = beauty["unique_3code_fraction"]
    spark.stop()
    write_results("semantic_ids", results)


if __name__ == "__main__":
    main()
