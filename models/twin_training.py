"""Batches, training and scoring for the TWIN-V2 ranker (torch + numpy; no pandas, no Spark)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from models.config import TwinConfig, TwinTrainConfig
from models.device import default_device
from models.distributed import DataParallel
from models.twin import ClusterBatch, TwinRanker

log = logging.getLogger(__name__)


def collate(
    user_positions: np.ndarray, targets: np.ndarray, items: Sequence[np.ndarray], sizes: Sequence[np.ndarray],
    cross: Sequence[np.ndarray], device: torch.device,
) -> ClusterBatch:
    """Pad each user's clusters to the batch's largest count (-1 = padding; position -1 = no clusters)."""
    counts = [len(items[p]) if p >= 0 else 0 for p in user_positions]
    width = max(1, max(counts, default=1))
    b = len(user_positions)
    cluster_items = np.full((b, width), -1, dtype=np.int64)
    cluster_sizes = np.ones((b, width), dtype=np.int64)
    features = np.zeros((b, width, cross[0].shape[1] if len(cross) else 3), dtype=np.float32)
    for row, (p, count) in enumerate(zip(user_positions, counts, strict=True)):
        if count:
            cluster_items[row, :count] = items[p]
            cluster_sizes[row, :count] = sizes[p]
            features[row, :count] = cross[p]
    return ClusterBatch(
        torch.as_tensor(targets, device=device), torch.as_tensor(cluster_items, device=device),
        torch.as_tensor(cluster_sizes, device=device), torch.as_tensor(features, device=device),
    )


def score(
    model: TwinRanker, item_vectors: torch.Tensor, item_tokens: torch.Tensor, user_positions: np.ndarray,
    targets: np.ndarray, items: Sequence[np.ndarray], sizes: Sequence[np.ndarray], cross: Sequence[np.ndarray],
    batch_size: int = 1024, precomputed: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> np.ndarray:
    """Logits for (user, target) pairs; item keys precomputed once unless given."""
    model.eval()
    device = item_vectors.device
    keys = precomputed or model.precompute_item_keys(item_vectors, item_tokens)
    out = []
    with torch.no_grad():
        for start in range(0, len(targets), batch_size):
            batch = collate(user_positions[start:start + batch_size], targets[start:start + batch_size],
                            items, sizes, cross, device)
            out.append(model(batch, item_vectors, item_tokens, precomputed=keys).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def train_twin(
    config: TwinConfig, train: TwinTrainConfig, item_vectors: np.ndarray, item_tokens: np.ndarray,
    user_positions: np.ndarray, targets: np.ndarray, labels: np.ndarray,
    items: Sequence[np.ndarray], sizes: Sequence[np.ndarray], cross: Sequence[np.ndarray],
    progress: bool = True,
) -> tuple[TwinRanker, list[dict[str, float]]]:
    """The ranker trained on labelled (user, target) pairs for train.epochs epochs or until the budget would
    pass; the per-epoch history. Under a process group each rank trains its shard of every batch
    (models/distributed.py) and rank 0's clock decides the stop."""
    from tqdm.auto import tqdm

    parallel = DataParallel.current()
    device = parallel.device(default_device(train.device))
    torch.manual_seed(train.seed)
    model = TwinRanker(config).to(device)
    step_loss = parallel.wrap(model, _pair_loss)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    vectors = torch.as_tensor(item_vectors, dtype=torch.float32, device=device)
    tokens = torch.as_tensor(item_tokens, device=device)
    history = []
    n = len(targets)
    began = time.perf_counter()
    for epoch in range(train.epochs):
        spent = parallel.share(time.perf_counter() - began)
        if epoch and train.max_minutes is not None and spent * (epoch + 1) / epoch > 60 * train.max_minutes:
            log.info("twin: %d epoch(s) in %.0f s; another would pass the %.1f-minute budget", epoch, spent,
                     train.max_minutes)
            break
        model.train()
        parallel.seed_dropout(train.seed, epoch)
        order = np.random.default_rng(train.seed * 1_000_003 + epoch).permutation(n)
        total, started = torch.zeros((), device=device), time.perf_counter()
        for start in tqdm(range(0, n, train.batch_size), desc=f"twin epoch {epoch + 1}/{train.epochs}",
                          unit="batch", disable=not (progress and parallel.primary), mininterval=2.0):
            rows, real = parallel.shard(order[start:start + train.batch_size])
            batch = collate(user_positions[rows], targets[rows], items, sizes, cross, device)
            loss = step_loss(batch, vectors, tokens, torch.as_tensor(labels[rows], device=device))
            pairs = torch.tensor(len(rows) if real else 0, device=device)  # a stand-in row: trained with weight 0
            optimizer.zero_grad(set_to_none=True)
            (loss * parallel.global_mean_weight(pairs)).backward()
            optimizer.step()
            total += loss.detach() * pairs
        mean_loss = float(parallel.sum(total)) / max(1, n)
        seconds = time.perf_counter() - started
        history.append({"epoch": epoch + 1, "loss": mean_loss, "pairs_per_s": n / max(seconds, 1e-9)})
        log.info("twin epoch %d: loss %.4f (%.0f pairs/s)", epoch + 1, mean_loss, n / max(seconds, 1e-9))
    model.eval()
    return model, history


def _pair_loss(model: TwinRanker, batch: ClusterBatch, vectors: torch.Tensor, tokens: torch.Tensor,
               labels: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of the batch's (user, target) pairs."""
    return F.binary_cross_entropy_with_logits(model(batch, vectors, tokens), labels)
