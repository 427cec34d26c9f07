"""Semantic IDs from RQ-VAE codes: the collision token, the ID string, and quality metrics.

Pure pandas/numpy (faiss for neighbours); the Spark job and the benchmark call these.

The 4th token makes IDs unique and stable: within one 3-code group, items
that already hold a token under the same model version keep it; items new to
the group take the smallest free tokens in item_id order. Nobody is renumbered.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipelines.errors import SemanticIdCapacityError

CODE_COLUMNS = ("c0", "c1", "c2")
TOKEN_COLUMN = "c3"


def semantic_id_string(codes: Sequence[int]) -> str:
    return "-".join(str(int(c)) for c in codes)


def assign_collision_tokens(group: pd.DataFrame, capacity: int) -> pd.DataFrame:
    """One 3-code group: item_id, c0..c2, previous_token (NaN/None when the item has none)
    -> item_id, c0..c2, c3 with every c3 distinct in [0, capacity)."""
    kept = group["previous_token"].notna()
    # an item could carry a token twice only after a bad manual edit; the first holder keeps it
    duplicated = kept & group["previous_token"].duplicated(keep="first")
    kept &= ~duplicated
    taken = set(group.loc[kept, "previous_token"].astype(int))
    newcomers = group.loc[~kept].sort_values("item_id", kind="stable")
    if len(taken) + len(newcomers) > capacity:
        prefix = semantic_id_string(group.iloc[0][list(CODE_COLUMNS)])
        raise SemanticIdCapacityError(
            f"semantic-ID group {prefix} holds {len(group)} items but the collision level has only "
            f"{capacity} tokens; train the RQ-VAE longer or with more codes, or raise the 4th level's size"
        )
    free = (token for token in range(capacity) if token not in taken)
    tokens = pd.Series(group["previous_token"].where(kept), index=group.index, dtype="float64")
    for index in newcomers.index:
        tokens[index] = next(free)
    out = group[["item_id", *CODE_COLUMNS]].copy()
    out[TOKEN_COLUMN] = tokens.astype(np.int32)
    return out


def assign_collision_tokens_of_groups(frame: pd.DataFrame, capacity: int) -> pd.DataFrame:
    """assign_collision_tokens for every 3-code group in `frame` at once (same columns, same tokens).

    Vectorised for the two kinds of group nearly every group is: all newcomers (tokens 0..n-1 in item_id
    order) and all holders (they keep theirs); only groups mixing both go through the per-group rule.
    """
    keys = list(CODE_COLUMNS)
    kept = frame["previous_token"].notna() & ~frame.duplicated([*keys, "previous_token"], keep="first")
    by_group = [frame[k] for k in keys]
    has_kept = kept.groupby(by_group).transform("any")
    has_newcomer = (~kept).groupby(by_group).transform("any")
    columns = ["item_id", *keys]

    newcomers = frame.loc[~has_kept, columns].sort_values([*keys, "item_id"], kind="stable")
    newcomers[TOKEN_COLUMN] = newcomers.groupby(keys).cumcount().astype(np.int32)
    full = newcomers[newcomers[TOKEN_COLUMN] >= capacity]
    if len(full):
        prefix = semantic_id_string(full.iloc[0][keys])
        size = int((newcomers[keys] == full.iloc[0][keys]).all(axis=1).sum())
        raise SemanticIdCapacityError(
            f"semantic-ID group {prefix} holds {size} items but the collision level has only "
            f"{capacity} tokens; train the RQ-VAE longer or with more codes, or raise the 4th level's size"
        )
    holders = frame.loc[has_kept & ~has_newcomer, columns].assign(
        **{TOKEN_COLUMN: frame.loc[has_kept & ~has_newcomer, "previous_token"].astype(np.int32)})
    mixed = frame[has_kept & has_newcomer]
    parts = [newcomers, holders, *(assign_collision_tokens(group, capacity) for _, group in mixed.groupby(keys))]
    return pd.concat(parts, ignore_index=True).sort_values([*keys, TOKEN_COLUMN], ignore_index=True)


def assign_semantic_ids(
    codes: pd.DataFrame, previous: pd.DataFrame | None, capacity: int
) -> pd.DataFrame:
    """codes: item_id, c0..c2 (this model version); previous: item_id, c0..c3 of the same
    version from the last run (or None). -> item_id, c0..c3, unique per item."""
    frame = codes[["item_id", *CODE_COLUMNS]].copy()
    frame["previous_token"] = previous_tokens(frame, previous)
    return assign_collision_tokens_of_groups(frame, capacity)


def previous_tokens(frame: pd.DataFrame, previous: pd.DataFrame | None) -> pd.Series:
    """Each item's old token if its 3 codes are unchanged, else NaN (it joins a new group)."""
    if previous is None or previous.empty:
        return pd.Series(np.nan, index=frame.index)
    joined = frame[["item_id", *CODE_COLUMNS]].merge(
        previous[["item_id", *CODE_COLUMNS, TOKEN_COLUMN]], on=["item_id", *CODE_COLUMNS], how="left"
    )
    return pd.Series(joined[TOKEN_COLUMN].to_numpy(dtype="float64"), index=frame.index)


def code_usage(codes: np.ndarray, codebook_size: int) -> np.ndarray:
    """[levels, codebook_size] counts of items per code."""
    return np.stack([np.bincount(codes[:, level], minlength=codebook_size) for level in range(codes.shape[1])])


def code_metrics(codes: np.ndarray, codebook_size: int) -> dict[str, float]:
    """Utilisation and perplexity per level, unique 3-code fraction, largest collision group."""
    metrics: dict[str, float] = {"items": float(len(codes))}
    if len(codes) == 0:
        return metrics
    usage = code_usage(codes, codebook_size)
    for level, counts in enumerate(usage):
        p = counts[counts > 0] / counts.sum()
        metrics[f"level{level}_utilization"] = float((counts > 0).mean())
        metrics[f"level{level}_perplexity"] = float(np.exp(-(p * np.log(p)).sum()))
    metrics["min_level_utilization"] = min(metrics[f"level{level}_utilization"] for level in range(len(usage)))
    _, group_sizes = np.unique(codes, axis=0, return_counts=True)
    metrics["unique_3code_fraction"] = float((group_sizes == 1).sum() / len(codes))
    metrics["largest_collision_group"] = float(group_sizes.max())
    return metrics


def neighbour_prefix_share(vectors: np.ndarray, first_codes: np.ndarray, k: int = 10) -> float:
    """Share of each item's k nearest neighbours (cosine) that share its first code."""
    import faiss

    x = np.ascontiguousarray(vectors, dtype=np.float32).copy()
    faiss.normalize_L2(x)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    _, found = index.search(x, k + 1)
    # Drop the item itself wherever it is: an item with an exact duplicate (MovieLens lists some titles
    # twice) need not come first, and counted as its own neighbour it always shares its code.
    keep = found != np.arange(len(x))[:, None]
    keep[keep.sum(axis=1) > k, -1] = False  # itself not among the k + 1: keep the first k
    neighbours = found[keep].reshape(len(x), k)
    return float((first_codes[neighbours] == first_codes[:, None]).mean())


def chance_prefix_share(first_codes: np.ndarray) -> float:
    """Probability that another item, drawn at random, shares an item's first code: what any neighbour share
    is to be compared with. Coarser or less even partitions have more of it by chance."""
    n = len(first_codes)
    if n < 2:
        return 0.0
    counts = np.unique(first_codes, return_counts=True)[1].astype(np.float64)
    return float((counts * (counts - 1)).sum() / (n * (n - 1)))
