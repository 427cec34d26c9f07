"""SASRec, the sequential retriever beside TIGER (torch): causal self-attention over item ids.

Kang & McAuley (2018) with the full-catalog cross-entropy loss that the tuned
reproductions use (it beats SASRec's sampled binary loss and BERT4Rec:
Klenitskiy & Vasilev, RecSys 2023): every position of a user's training
sequence predicts the next item over all items, item embeddings tied to the
output layer. Settings from those reproductions (2 blocks, 64 dims, length 50,
Adam 1e-3, batch 128); dropout is chosen on the validation split from
`dropout_grid`, each candidate trained with early stopping on validation
NDCG@10 on the selection users (models/selection.py, the rule TIGER follows too).
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.config import SASRecConfig
from models.distributed import DataParallel
from models.examples import Examples
from models.seen import Seen, mask_seen_torch
from models.selection import selection_score, selection_split

log = logging.getLogger(__name__)


class SASRec(nn.Module):
    def __init__(self, n_items: int, config: SASRecConfig, dropout: float):
        super().__init__()
        self.config = config
        self.items = nn.Embedding(n_items + 1, config.d_model, padding_idx=0)  # row 0: padding, item r: r + 1
        self.positions = nn.Embedding(config.max_length, config.d_model)
        layer = nn.TransformerEncoderLayer(config.d_model, config.heads, dim_feedforward=config.d_model,
                                           dropout=dropout, batch_first=True, norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, config.blocks, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.d_model)
        self.dropout = nn.Dropout(dropout)
        nn.init.normal_(self.items.weight, std=0.02)
        nn.init.normal_(self.positions.weight, std=0.02)

    def forward(self, histories: torch.Tensor) -> torch.Tensor:
        """histories [B, L] item rows right-aligned (-1 = padding) -> hidden states [B, L, d]."""
        length = histories.shape[1]
        real = histories >= 0
        x = self.items(histories + 1) * math.sqrt(self.config.d_model)
        x = self.dropout((x + self.positions.weight[-length:]) * real.unsqueeze(-1))
        # causal, and no query sees padding; each position always sees itself, so no row is fully masked
        causal = torch.ones(length, length, dtype=torch.bool, device=histories.device).tril()
        allowed = causal & real[:, None, :]
        allowed |= torch.eye(length, dtype=torch.bool, device=histories.device)
        mask = (~allowed).repeat_interleave(self.config.heads, dim=0)
        return self.norm(self.encoder(x, mask=mask))

    def item_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self.items.weight[1:].T


def next_item_sequences(train: Examples, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Each user's training sequence as (inputs, next items) [U, width], from the user's longest prefix:
    build_sequences emits prefixes in order, so the last one per user is history + final target."""
    last = np.r_[train.users[1:] != train.users[:-1], True] if len(train) else np.zeros(0, dtype=bool)
    histories, targets = train.histories[last], train.targets[last]
    if histories.shape[1] < width:
        raise ValueError(f"SASRec needs histories of {width} items; these hold {histories.shape[1]}")
    full = np.concatenate([histories[:, -width:], targets[:, None]], axis=1)
    return full[:, :-1], full[:, 1:]


def sasrec_scores(model: SASRec, histories: np.ndarray) -> torch.Tensor:
    """[B, N] scores of every item after each history (its last `max_length` items)."""
    device = next(model.parameters()).device
    h = torch.as_tensor(histories[:, -model.config.max_length:], device=device)
    return model.item_logits(model(h)[:, -1])


def sasrec_top_k(model: SASRec, examples: Examples, k: int, seen: Seen | None,
                 batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(top-k item rows, their scores) per example from the last position's scores over the whole catalog;
    the example's `seen` items never (None: nothing excluded)."""
    model.eval()
    items, scores = [], []
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            logits = sasrec_scores(model, examples.histories[start:start + batch_size]).float()
            if seen is not None:
                mask_seen_torch(logits, seen, start)
            top = logits.topk(min(k, logits.shape[1]), dim=1)
            items.append(torch.where(torch.isfinite(top.values), top.indices, -1).cpu().numpy())
            scores.append(top.values.cpu().numpy())
    if not items:
        return np.zeros((0, k), dtype=np.int64), np.zeros((0, k), dtype=np.float32)
    return np.concatenate(items), np.concatenate(scores)


def _sequence_loss(model: SASRec, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy over the batch's real positions, their number): only real positions predict (all
    of them carry a next item)."""
    real = x >= 0
    return F.cross_entropy(model.item_logits(model(x)[real]), y[real]), real.sum()


def _train_epoch(model: SASRec, step_loss: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor,
                 targets: torch.Tensor, config: SASRecConfig, epoch: int) -> float:
    """One pass over the sequences in a seeded order; the mean loss per predicted position. Under a process
    group each rank trains its shard of every batch (models/distributed.py)."""
    parallel = DataParallel.current()
    model.train()
    parallel.seed_dropout(config.seed, epoch)
    order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(config.seed * 7919 + epoch))
    total = torch.zeros((), device=inputs.device)
    count = torch.zeros((), dtype=torch.long, device=inputs.device)
    for start in range(0, len(order), config.batch_size):
        rows, real = parallel.shard(order[start:start + config.batch_size])
        rows = rows.to(inputs.device)
        loss, positions = step_loss(inputs[rows], targets[rows])
        positions = positions if real else positions * 0  # a stand-in row: trained with weight 0
        optimizer.zero_grad(set_to_none=True)
        (loss * parallel.global_mean_weight(positions)).backward()
        optimizer.step()
        total, count = total + loss.detach() * positions, count + positions
    return float(parallel.sum(total)) / max(int(parallel.sum(count)), 1)


def refit_sasrec(examples: Examples, n_items: int, config: SASRecConfig, dropout: float, epochs: int) -> SASRec:
    """A fresh SASRec trained for `epochs` epochs (the number validation chose) on `examples`, with no
    validation: every event counts, the user's latest ones included."""
    from models.device import default_device

    parallel = DataParallel.current()
    device = parallel.device(default_device(config.device))
    inputs, targets = (torch.as_tensor(a, device=device) for a in next_item_sequences(examples, config.max_length))
    torch.manual_seed(config.seed)
    model = SASRec(n_items, config, dropout).to(device)
    step_loss = parallel.wrap(model, _sequence_loss)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.98))
    for epoch in range(epochs):
        loss = _train_epoch(model, step_loss, optimizer, inputs, targets, config, epoch)
        log.info("SASRec refit epoch %d of %d: loss %.4f", epoch + 1, epochs, loss)
    return model.eval()


def _train_candidate(inputs: torch.Tensor, targets: torch.Tensor, valid: Examples, seen: Seen | None, n_items: int,
                     config: SASRecConfig, dropout: float) -> tuple[SASRec, dict]:
    device, parallel = inputs.device, DataParallel.current()
    torch.manual_seed(config.seed)
    model = SASRec(n_items, config, dropout).to(device)
    step_loss = parallel.wrap(model, _sequence_loss)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.98))
    best, best_state, best_epoch, history = -1.0, None, 0, []
    started = time.perf_counter()
    if config.max_epochs == 0:  # an untrained model (a baseline for gates and tests): scored as it is
        best, _ = selection_score(sasrec_top_k(model, valid, 10, seen)[0], valid.targets)
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for epoch in range(config.max_epochs):
        loss = _train_epoch(model, step_loss, optimizer, inputs, targets, config, epoch)
        # rank 0 validates and reads the clock; every rank keeps the same best epoch and stops with it
        ndcg, spent = parallel.share(
            (selection_score(sasrec_top_k(model, valid, 10, seen)[0], valid.targets)[0] if parallel.primary else 0.0,
             time.perf_counter() - started))
        history.append({"epoch": epoch + 1, "loss": loss, "valid_ndcg@10": ndcg})
        if ndcg > best:
            best, best_epoch = ndcg, epoch + 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        over_budget = config.max_minutes is not None and spent > 60 * config.max_minutes
        if epoch + 1 - best_epoch >= config.patience or over_budget:
            break
    assert best_state is not None
    model.load_state_dict(best_state)
    log.info("SASRec dropout %.2f: best valid NDCG@10 %.4f at epoch %d of %d (%.0f s)", dropout, best, best_epoch,
             len(history), time.perf_counter() - started)
    return model.eval(), {"dropout": dropout, "valid_ndcg@10": best, "best_epoch": best_epoch,
                          "epochs": len(history), "seconds": time.perf_counter() - started}


def train_sasrec(train: Examples, valid: Examples, n_items: int, config: SASRecConfig | None = None,
                 valid_seen: Seen | None = None) -> tuple[SASRec, dict]:
    """The best SASRec over `config.dropout_grid` by the selection metric on the selection users of `valid`
    (their `valid_seen` excluded), and how each candidate did. `train`, `valid`: examples whose histories
    are at least `config.max_length` wide."""
    from models.device import default_device

    config = config or SASRecConfig()
    device = DataParallel.current().device(default_device(config.device))
    inputs, targets = (torch.as_tensor(a, device=device) for a in next_item_sequences(train, config.max_length))
    selection, seen = selection_split(valid, valid_seen, config.eval_users, config.seed)
    candidates = [_train_candidate(inputs, targets, selection, seen, n_items, config, dropout)
                  for dropout in config.dropout_grid]
    model, chosen = max(candidates, key=lambda c: c[1]["valid_ndcg@10"])
    return model, {"chosen": chosen, "candidates": [c[1] for c in candidates]}
