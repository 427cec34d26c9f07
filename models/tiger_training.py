"""Training, validation and generation loops for TIGER (torch + numpy arrays; no pandas, no Spark).

Deterministic for a seed and resumable: the shuffle of epoch e comes from a
generator seeded by (seed, e), and the checkpoint carries the model, the
optimizer, the schedule and torch's RNG (dropout), so a resumed run equals an
uninterrupted one. The best epoch by validation Recall@10 is kept apart.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pathlib
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from models.beam_search import BeamResult, SemanticIdTrie, beam_search, exclusion_mask
from models.config import TigerConfig, TigerTrainConfig
from models.rqvae import default_device
from models.tiger import Tiger, encoder_tokens, user_bucket

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
BEST_FILE = "best.pt"


@dataclass(frozen=True)
class Sequences:
    """Examples as arrays: user ids (str), right-aligned histories [E, H] (-1 pad), targets [E] (-1 none)."""

    users: np.ndarray
    histories: np.ndarray
    targets: np.ndarray

    def buckets(self, config: TigerConfig) -> np.ndarray:
        return np.array([user_bucket(str(u), config.user_buckets) for u in self.users], dtype=np.int64)


@dataclass
class TigerState:
    epoch: int = 0
    step: int = 0
    best_recall: float = -1.0
    best_epoch: int = 0
    planned_epochs: int | None = None  # set after the first epoch when a time budget shortens the run
    history: list[dict[str, float]] = field(default_factory=list)


def _autocast(device: torch.device):
    # bf16 on GPU: the paper's models train in reduced precision; CPU stays fp32
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class WarmupCosine:
    """Linear warm-up, then cosine decay to 0 at `total_steps`. An object rather than a closure so that
    LambdaLR checkpoints `total_steps`, which a time budget may shorten after the first epoch."""

    def __init__(self, warmup_steps: int, total_steps: int):
        self.warmup_steps, self.total_steps = warmup_steps, total_steps

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def epochs_within_budget(budget_seconds: float, elapsed_seconds: float, epoch_seconds: float, done: int,
                         planned: int) -> int:
    """How many epochs the run can plan for when one takes `epoch_seconds` and `elapsed_seconds` of the
    budget are spent after `done` epochs (never fewer than `done`, never more than `planned`)."""
    more = int((budget_seconds - elapsed_seconds) // max(epoch_seconds, 1e-9))
    return max(done, min(planned, done + more))


def _rng_states() -> dict[str, object]:
    # dropout draws from the CUDA generator on GPU: both are saved so a resume equals an uninterrupted run
    return {"rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _restore_rng(saved: dict) -> None:
    torch.set_rng_state(saved["rng"].cpu())  # torch.load's map_location may have moved it to the GPU
    if saved.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([state.cpu() for state in saved["cuda_rng"]])


def _save(path: pathlib.Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def recommend(
    model: Tiger, item_codes: torch.Tensor, trie: SemanticIdTrie, sequences: Sequences, top_k: int,
    beam_width: int, exclude_history: bool = True, batch_size: int = 256, progress: bool = False,
    exclude_items: list[np.ndarray] | None = None,
) -> BeamResult:
    """Top-k items per example by constrained beam search, batched. With `exclude_history`, the items
    of `exclude_items` (per example; default: the history the model reads) are never returned."""
    from tqdm.auto import tqdm

    model.eval()
    device = next(model.parameters()).device
    item_codes, trie = item_codes.to(device), trie.to(device)
    buckets = torch.as_tensor(sequences.buckets(model.config), device=device)
    histories = torch.as_tensor(sequences.histories, device=device)
    items, scores = [], []
    for start in tqdm(range(0, len(histories), batch_size), desc="beam search", unit="batch",
                      disable=not progress, mininterval=2.0):
        h = histories[start:start + batch_size]
        tokens = encoder_tokens(model.config, item_codes, h, buckets[start:start + batch_size])
        exclude = None
        if exclude_history:
            seen = h if exclude_items is None else exclude_items[start:start + batch_size]
            exclude = exclusion_mask(seen, trie.items, device)
        with _autocast(device):
            result = beam_search(model, tokens, trie, top_k, beam_width, exclude=exclude)
        items.append(result.items.cpu())
        scores.append(result.scores.float().cpu())
    if not items:
        return BeamResult(torch.zeros(0, top_k, dtype=torch.long), torch.zeros(0, top_k))
    return BeamResult(torch.cat(items), torch.cat(scores))


def recall_at(ranked: np.ndarray, targets: np.ndarray) -> float:
    return float((ranked == targets[:, None]).any(1).mean()) if len(targets) else 0.0


def train_tiger(
    item_codes: np.ndarray,
    train_examples: Sequences,
    valid_examples: Sequences,
    config: TigerConfig,
    train: TigerTrainConfig = TigerTrainConfig(),
    directory: pathlib.Path | None = None,
    stop_after_epochs: int | None = None,
    progress: bool = True,
    initial_weights: pathlib.Path | None = None,
) -> tuple[Tiger, TigerState]:
    """Train on every prefix in `train_examples`; after each epoch, Recall@10 on (a fixed sample of)
    `valid_examples`; the best epoch's weights go to `directory/best.pt`."""
    from tqdm.auto import tqdm

    device = default_device(train.device)
    torch.manual_seed(train.seed)
    model = Tiger(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    n = len(train_examples.targets)
    steps_per_epoch = max(1, math.ceil(n / train.batch_size))
    schedule = WarmupCosine(train.warmup_steps, train.epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    state = TigerState()
    checkpoint = directory / CHECKPOINT_FILE if directory is not None else None
    if initial_weights is not None and not (checkpoint is not None and checkpoint.exists()):
        model.load_state_dict(torch.load(initial_weights, map_location=device, weights_only=True)["model"])
    if checkpoint is not None and checkpoint.exists():
        saved = torch.load(checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        _restore_rng(saved)
        state = TigerState(**saved["state"])
        log.info("resumed TIGER from %s at epoch %d", checkpoint, state.epoch)

    codes = torch.as_tensor(item_codes, device=device)
    trie = SemanticIdTrie(item_codes, config.codebook_size).to(device)
    buckets = torch.as_tensor(train_examples.buckets(config), device=device)
    histories = torch.as_tensor(train_examples.histories, device=device)
    targets = torch.as_tensor(train_examples.targets, device=device)
    sample = np.random.default_rng(train.seed).permutation(len(valid_examples.targets))[: train.eval_users]
    valid = Sequences(valid_examples.users[sample], valid_examples.histories[sample], valid_examples.targets[sample])

    started = time.perf_counter()
    last_epoch = train.epochs if stop_after_epochs is None else min(train.epochs, state.epoch + stop_after_epochs)
    for epoch in range(state.epoch, last_epoch):
        if state.planned_epochs is not None and epoch >= state.planned_epochs:
            break
        model.train()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(train.seed * 1_000_003 + epoch))
        total_loss, epoch_started = 0.0, time.perf_counter()
        bar = tqdm(range(0, n, train.batch_size), desc=f"tiger epoch {epoch + 1}/{train.epochs}", unit="batch",
                   disable=not progress, mininterval=2.0)
        for start in bar:
            rows = order[start:start + train.batch_size].to(device)
            tokens = encoder_tokens(config, codes, histories[rows], buckets[rows])
            target_codes = codes[targets[rows]]
            with _autocast(device):
                logits = model(tokens, target_codes)
            loss = F.cross_entropy(logits.float().reshape(-1, config.codebook_size), target_codes.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            state.step += 1
            total_loss += float(loss.detach()) * len(rows)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}",
                            ex_s=f"{(start + len(rows)) / (time.perf_counter() - epoch_started):,.0f}", refresh=False)
        train_seconds = time.perf_counter() - epoch_started
        ranked = recommend(model, codes, trie, valid, top_k=10, beam_width=train.beam_width).items.numpy()
        recall = recall_at(ranked, valid.targets)
        state.epoch = epoch + 1
        state.history.append({"epoch": state.epoch, "loss": total_loss / n, "valid_recall@10": recall,
                              "examples_per_s": n / train_seconds, "seconds": time.perf_counter() - epoch_started})
        log.info("epoch %d: loss %.4f, valid Recall@10 %.4f, %.0f examples/s", state.epoch, total_loss / n,
                 recall, n / train_seconds)
        if recall > state.best_recall:
            state.best_recall, state.best_epoch = recall, state.epoch
            if directory is not None:
                _save(directory / BEST_FILE, {"model": model.state_dict()})
        if train.max_minutes is not None and state.planned_epochs is None:
            # decay the learning rate to 0 by the last epoch that fits, not by train.epochs: a budget run
            # would otherwise stop near the peak rate and lose the annealing phase
            state.planned_epochs = epochs_within_budget(
                60 * train.max_minutes, time.perf_counter() - started, time.perf_counter() - epoch_started,
                state.epoch, train.epochs)
            schedule.total_steps = state.planned_epochs * steps_per_epoch
            log.info("a %.0f-minute budget fits %d epochs: the learning rate decays to 0 by then",
                     train.max_minutes, state.planned_epochs)
        if checkpoint is not None:
            _save(checkpoint, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "scheduler": scheduler.state_dict(), **_rng_states(), "state": state.__dict__})
        if train.max_minutes is not None and time.perf_counter() - started > 60 * train.max_minutes:
            log.info("stopping after epoch %d: the %.0f-minute budget is spent", state.epoch, train.max_minutes)
            break
    model.eval()
    return model, state


def load_weights(config: TigerConfig, path: pathlib.Path, device: str | None = None) -> Tiger:
    target = default_device(device)
    model = Tiger(config)
    model.load_state_dict(torch.load(path, map_location=target, weights_only=True)["model"])
    return model.to(target).eval()
