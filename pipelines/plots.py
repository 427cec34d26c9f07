"""PNG plots people look at instead of tables. matplotlib with the Agg backend (no display)."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | pathlib.Path) -> str:
    fig.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return str(path)


def plot_cluster_sizes(counts_by_name: Mapping[str, Mapping[int, int]], gamma: int, path: str | pathlib.Path) -> str:
    """One histogram of cluster sizes ({n: clusters}) per dataset; clusters above gamma share the last bar."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(counts_by_name), figsize=(4 * len(counts_by_name), 3.2), squeeze=False)
    for ax, (name, counts) in zip(axes[0], counts_by_name.items(), strict=True):
        sizes, clusters = np.array(list(counts), dtype=np.int64), np.array(list(counts.values()), dtype=np.int64)
        # above gamma only when one item repeats (k-means cannot split identical embeddings)
        ax.hist(np.minimum(sizes, gamma + 1), bins=range(1, gamma + 3), weights=clusters, color="#4c72b0",
                edgecolor="white")
        ax.set_title(f"{name}: {int(clusters.sum()):,} clusters")
        ax.set_xlabel(f"cluster size n (last bar: > {gamma}, one item repeated)")
    axes[0][0].set_ylabel("clusters")
    fig.suptitle(f"TWIN-V2 cluster sizes (gamma = {gamma})")
    return _save(fig, path)


def plot_code_usage(usage: np.ndarray, path: str | pathlib.Path, title: str) -> str:
    """One bar chart per codebook level: items per code, codes sorted by use (dead codes show as a gap)."""
    plt = _pyplot()
    levels, size = usage.shape
    fig, axes = plt.subplots(1, levels, figsize=(4 * levels, 3.0), squeeze=False, sharey=True)
    for level, ax in enumerate(axes[0]):
        counts = np.sort(usage[level])[::-1]
        used = int((counts > 0).sum())
        ax.bar(np.arange(size), counts, width=1.0, color="#55a868")
        ax.set_title(f"level {level}: {used}/{size} codes used")
        ax.set_xlabel("code (sorted by items)")
    axes[0][0].set_ylabel("items")
    fig.suptitle(title)
    return _save(fig, path)


def plot_method_comparison(results: Mapping[str, Mapping[str, float]], path: str | pathlib.Path, title: str,
                           errors: Mapping[str, Mapping[str, float]] | None = None) -> str:
    """Grouped bars: one group per metric (Recall@5, NDCG@10, ...), one bar per method; `errors`
    ({method: {metric: standard error}}) draws +- 1 standard error where given."""
    plt = _pyplot()
    methods = list(results)
    metrics = [m for m in next(iter(results.values())) if "@" in m]
    width = 0.8 / max(1, len(methods))
    fig, ax = plt.subplots(figsize=(1.6 * len(metrics) + 2, 3.4))
    for i, method in enumerate(methods):
        values = [results[method].get(m, 0.0) for m in metrics]
        spread = [(errors or {}).get(method, {}).get(m, 0.0) for m in metrics]
        bars = ax.bar(np.arange(len(metrics)) + i * width, values, width, label=method, yerr=spread, capsize=2)
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(np.arange(len(metrics)) + width * (len(methods) - 1) / 2, metrics)
    ax.set_ylabel("test split")
    ax.legend(fontsize=8)
    ax.set_title(title)
    return _save(fig, path)
