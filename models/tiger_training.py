"""Training, validation and generation loops for TIGER (torch + numpy arrays; no pandas, no Spark).

Deterministic for a seed and resumable: the shuffle of epoch e comes from a
generator seeded by (seed, e), and the checkpoint carries the model, the
optimizer, the schedule and torch's RNG (dropout), so a resumed run equals an
uninterrupted one. The best epoch by validation NDCG@10 (models/selection.py) is kept apart.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import os
import pathlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
import torch
from torch.nn import functional as F

from models.beam_search import BeamResult, SemanticIdTrie, beam_search, exclusion_mask
from models.beam_search_fast import batch_size_for, exclusion_mask_fast, fast_beam_search
from models.cold_start import ColdItems, best_cold_items, cold_slots, with_cold_places
from models.config import TigerConfig, TigerTrainConfig
from models.device import default_device
from models.distributed import DataParallel
from models.examples import Examples, length_bucketed_batches, windows_of_prefixes
from models.metrics import per_user_gains, standard_error
from models.seen import Seen
from models.selection import selection_score, selection_split
from models.tiger import Tiger, encoder_tokens, sequence_states, trim_leading_padding, user_buckets

log = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=torch.nn.Module)

CHECKPOINT_FILE = "checkpoint.pt"
BEST_FILE = "best.pt"


@dataclass
class TigerState:
    epoch: int = 0
    step: int = 0
    best_valid: float = -1.0  # the selection metric (models/selection.py) of the best epoch
    best_epoch: int = 0
    planned_epochs: int | None = None  # with a time budget: the epochs that fit, re-planned after each
    beam_weight: float | None = None  # dense head: the serving weight of the beam's score, chosen on validation
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


@dataclass(frozen=True)
class DenseInputs:
    """What the dense head reads at serving: every item's content vector (gold.item_embeddings rows, [N, D])
    and the item rows no training event reached (cold items, which the beam rarely finds and the dense
    head scores from content)."""

    item_vectors: np.ndarray
    cold_items: np.ndarray
    item_hashes: np.ndarray | None = None  # [N] stable hashes of the item ids (models.tiger.item_hashes)

    def __post_init__(self) -> None:
        if self.item_vectors.ndim != 2:
            raise ValueError(f"item_vectors must be [items, dim], got shape {self.item_vectors.shape}")


@dataclass(frozen=True)
class _DenseOnDevice:
    """DenseInputs as tensors on the model's device."""

    vectors: torch.Tensor  # [N, D]
    hashes: torch.Tensor | None  # [N]
    warm: torch.Tensor  # [N] bool: not cold
    cold: torch.Tensor  # [C] item rows

    def features(self, model: Tiger) -> torch.Tensor:
        return model.item_features(self.vectors, self.hashes, self.warm)


def _dense_on_device(config: TigerConfig, dense: DenseInputs | None, device: torch.device) -> _DenseOnDevice | None:
    """The dense head's inputs on the device (None without a head); checked against the config."""
    if not config.dense_head:
        return None
    if dense is None:
        raise ValueError("TigerConfig(dense_head=True) trains on item vectors: pass dense=DenseInputs(...)")
    if dense.item_vectors.shape[1] != config.item_vector_dim:
        raise ValueError(f"item vectors are {dense.item_vectors.shape[1]}-d, the config's dense head expects "
                         f"{config.item_vector_dim}")
    n = len(dense.item_vectors)
    cold = torch.as_tensor(dense.cold_items, dtype=torch.long, device=device)
    warm = torch.ones(n, dtype=torch.bool, device=device)
    warm[cold] = False
    hashes = None if dense.item_hashes is None else torch.as_tensor(dense.item_hashes, dtype=torch.long, device=device)
    return _DenseOnDevice(torch.as_tensor(dense.item_vectors, dtype=torch.float32, device=device), hashes, warm, cold)


def recommend(
    model: Tiger, item_codes: torch.Tensor, trie: SemanticIdTrie, sequences: Examples, top_k: int,
    beam_width: int, exclude_history: bool = True, batch_size: int | None = None, progress: bool = False,
    exclude_items: list[np.ndarray] | None = None, fast: bool = True, dense: DenseInputs | None = None,
    beam_weight: float = 0.5, cold: ColdItems | None = None,
) -> BeamResult:
    """Top-k items per example by constrained beam search, batched (None: as many users as memory holds).
    With `exclude_history`, the items of `exclude_items` (per example; default: the history the model
    reads) are never returned. `fast=False` runs the reference search (same results, for checks). With a
    dense head and `dense`, the beam's items and the cold items are ordered by dense logit + `beam_weight`
    x the beam's log-probability. With `cold`, the last places go to cold items (models.cold_start)."""
    return recommend_by_weight(model, item_codes, trie, sequences, top_k, beam_width, exclude_history, batch_size,
                               progress, exclude_items, fast, dense, (beam_weight,), cold)[beam_weight]


def recommend_by_weight(
    model: Tiger, item_codes: torch.Tensor, trie: SemanticIdTrie, sequences: Examples, top_k: int,
    beam_width: int, exclude_history: bool = True, batch_size: int | None = None, progress: bool = False,
    exclude_items: list[np.ndarray] | None = None, fast: bool = True, dense: DenseInputs | None = None,
    beam_weights: Sequence[float] = (0.5,), cold: ColdItems | None = None,
) -> dict[float, BeamResult]:
    """`recommend` for several beam weights from one beam search (validation chooses the weight); without a
    dense head every weight gets the beam's own order. `cold`: the last places of each list go to cold items
    (models.cold_start)."""
    from tqdm.auto import tqdm

    model.eval()
    device = next(model.parameters()).device
    item_codes, trie = item_codes.to(device), trie.to(device)
    search, mask_of = (fast_beam_search, exclusion_mask_fast) if fast else (beam_search, exclusion_mask)
    batch_size = batch_size or batch_size_for(model, max(beam_width, top_k), device)
    buckets = torch.as_tensor(user_buckets(sequences.users, model.config.user_buckets), device=device)
    histories = torch.as_tensor(sequences.histories, device=device)
    on_device = _dense_on_device(model.config, dense, device) if dense is not None else None
    use_dense = on_device is not None
    features = items = None
    if on_device is not None:
        with torch.inference_mode():
            features = on_device.features(model)  # [N, d], once per call
            items = model.item_representations(features, item_codes)
    width = max(beam_width, top_k) if use_dense else top_k  # the dense head re-orders the whole beam
    slots = cold_slots(cold.share, top_k) if cold is not None and len(cold.rows) else 0
    cold_rows = torch.as_tensor(cold.rows, dtype=torch.long, device=device) if slots and cold is not None else None
    found: dict[float, tuple[list[torch.Tensor], list[torch.Tensor]]] = {w: ([], []) for w in beam_weights}
    for start in tqdm(range(0, len(histories), batch_size), desc="beam search", unit="batch",
                      disable=not progress, mininterval=2.0):
        h = trim_leading_padding(histories[start:start + batch_size])
        tokens = encoder_tokens(model.config, item_codes, h, buckets[start:start + batch_size], trim_padding=False)
        exclude = None
        if exclude_history:
            seen = h if exclude_items is None else exclude_items[start:start + batch_size]
            exclude = mask_of(seen, trie.items, device)
        with _autocast(device), torch.inference_mode():
            content = model.history_content(features, h) if features is not None else None
            encoded = model.encode(tokens, content)  # once: the beam search and the dense head both read it
            result = search(model, tokens, trie, width, beam_width, exclude=exclude, encoded=encoded)
            states = sequence_states(encoded[0], model.config.levels, False) if use_dense else None
            # top_k of them: the cold places stay full even when the kept places hold some of the best
            cold_best = (best_cold_items(model, *encoded, cold_rows, item_codes[cold_rows], exclude, top_k)
                         if cold_rows is not None else None)
        for weight, (batch_items, batch_scores) in found.items():
            ranked = result if states is None or items is None or on_device is None else rescore_with_dense_head(
                model, states, items, result, on_device.cold, exclude, top_k, weight, item_codes)
            if cold_best is not None:
                ranked = with_cold_places(ranked, cold_best, top_k, slots)
            batch_items.append(ranked.items[:, :top_k].cpu())
            batch_scores.append(ranked.scores[:, :top_k].float().cpu())
    if not len(histories):
        empty = BeamResult(torch.zeros(0, top_k, dtype=torch.long), torch.zeros(0, top_k))
        return {w: empty for w in beam_weights}
    return {w: BeamResult(torch.cat(i), torch.cat(s)) for w, (i, s) in found.items()}


@torch.inference_mode()
def rescore_with_dense_head(model: Tiger, states: torch.Tensor, items: torch.Tensor, beam: BeamResult,
                            cold: torch.Tensor | None, exclude: torch.Tensor | None, top_k: int,
                            beam_weight: float, item_codes: torch.Tensor | None = None) -> BeamResult:
    """The beam's items [B, W] plus the cold items [C] (not excluded, not already in the beam), ordered by
    dense logit + beam_weight x beam log-probability. A cold item's beam score is that of the best beam item
    sharing its first 3 codes (TIGER's own route to new items: the decoder reached their content's cluster),
    else the user's lowest beam score; `item_codes` [N, L] (None: the lowest score always). All on the device,
    no host sync. Returns [B, top_k] (-1 / -inf where none)."""
    candidates, beam_scores = beam.items, beam.scores.float()  # [B, W]
    missing = torch.tensor(float("-inf"), device=states.device)
    beam_scores = torch.where(candidates >= 0, beam_scores, missing)
    if cold is not None and len(cold):
        cold_rows = cold[None].expand(len(candidates), -1)  # [B, C]
        blocked = (cold_rows[:, :, None] == candidates[:, None, :]).any(-1)
        if exclude is not None:
            blocked |= exclude.gather(1, cold_rows)
        floor = torch.where(beam_scores.isfinite(), beam_scores, torch.zeros_like(beam_scores)).amin(1, keepdim=True)
        cold_scores = floor.expand(-1, len(cold))
        if item_codes is not None:
            prefix = _prefix_keys(item_codes, model.config.codebook_size)  # [N]
            same = prefix[cold][None, :, None] == prefix[candidates.clamp(min=0)][:, None, :]  # [B, C, W]
            inherited = torch.where(same, beam_scores[:, None, :], missing).amax(-1)  # [B, C]
            cold_scores = torch.where(inherited.isfinite(), inherited, cold_scores)
        candidates = torch.cat([candidates, torch.where(blocked, -1, cold_rows)], dim=1)
        beam_scores = torch.cat([beam_scores, cold_scores], dim=1)
    dense = (model.dense_queries(states.float())[:, None, :]
             * items[candidates.clamp(min=0)]).sum(-1) / model.config.dense_temperature  # [B, W + C]
    score = torch.where(candidates >= 0, dense + beam_weight * beam_scores, missing)
    top = score.topk(min(top_k, score.shape[1]), dim=1)
    chosen = candidates.gather(1, top.indices)
    return BeamResult(torch.where(top.values.isfinite(), chosen, -1), top.values)


def _prefix_keys(item_codes: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """[N, L] codes -> [N] one integer per item's first 3 codes (its content cluster; the 4th only breaks ties)."""
    key = torch.zeros(len(item_codes), dtype=torch.long, device=item_codes.device)
    for level in range(min(3, item_codes.shape[1])):
        key = key * codebook_size + item_codes[:, level]
    return key


class WeightAverage(Generic[ModelT]):
    """An exponential moving average of a model's parameters, kept in a copy of the model.

    The decay ramps up as min(decay, (1 + t) / (10 + t)) at step t, so the average is not dominated by the
    random initial weights early in a run. One fused lerp per step and no host sync."""

    def __init__(self, model: ModelT, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.model: ModelT = copy.deepcopy(model).eval().requires_grad_(False)
        self._source = [p.detach() for p in model.parameters()]
        self._average: list[torch.Tensor] = list(self.model.parameters())

    @torch.no_grad()
    def update(self, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self._average, self._source, 1.0 - decay)


@dataclass
class _Run:
    """What one training run carries from epoch to epoch (and into its checkpoint)."""

    model: Tiger
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    schedule: WarmupCosine
    state: TigerState
    steps_per_epoch: int
    step_loss: torch.nn.Module  # _batch_loss over the model; DDP-wrapped when training runs in several processes
    parallel: DataParallel = DataParallel()
    average: WeightAverage[Tiger] | None = None

    @property
    def scored(self) -> Tiger:
        """The weights that validation scores and best.pt keeps: the average when there is one."""
        return self.model if self.average is None else self.average.model

    def checkpoint(self) -> dict:
        average = {} if self.average is None else {"average": self.average.model.state_dict()}
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), **_rng_states(), "state": self.state.__dict__, **average}


def _start_run(config: TigerConfig, train: TigerTrainConfig, device: torch.device, steps_per_epoch: int,
               checkpoint: pathlib.Path | None, initial_weights: pathlib.Path | None) -> _Run:
    """A fresh model (seeded), warm-started from `initial_weights`, or resumed from `checkpoint` when it exists.
    Every rank of a distributed run starts the same way (same seed, same files)."""
    torch.manual_seed(train.seed)
    model = Tiger(config).to(device)
    # fused: one kernel for every parameter's update on GPU (the loop over tensors is host-bound there)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay,
                                  fused=device.type == "cuda")
    steps_per_epoch = max(1, steps_per_epoch)
    schedule = WarmupCosine(train.warmup_steps, train.epochs * steps_per_epoch)
    parallel = DataParallel.current()
    run = _Run(model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule), schedule, TigerState(),
               steps_per_epoch, parallel.wrap(model, _batch_loss), parallel)
    saved: dict | None = None
    if checkpoint is not None and checkpoint.exists():
        saved = torch.load(checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        run.scheduler.load_state_dict(saved["scheduler"])
        _restore_rng(saved)
        saved_state = dict(saved["state"])
        if "best_recall" in saved_state:  # checkpoints written before one selection rule
            saved_state["best_valid"] = saved_state.pop("best_recall")
        run.state = TigerState(**saved_state)
        log.info("resumed TIGER from %s at epoch %d", checkpoint, run.state.epoch)
    elif initial_weights is not None:
        model.load_state_dict(torch.load(initial_weights, map_location=device, weights_only=True)["model"])
    if train.ema_decay is not None:
        run.average = WeightAverage(model, train.ema_decay)
        if saved is not None and "average" in saved:  # a checkpoint of a run without one starts from the weights
            run.average.model.load_state_dict(saved["average"])
    return run


@dataclass(frozen=True)
class _TrainingData:
    """The training examples as tensors on the training device, built once per run: the prefixes
    (histories [E, H], targets [E]) or, for a causal encoder, their windows (items [E, H + 1], trained
    [E, H]). A batch holds about train.batch_size targets either way: `rows_per_batch` prefixes, or
    windows of similar length (`length_bucketed_batches`)."""

    buckets: torch.Tensor  # [E] user token buckets
    rows: torch.Tensor  # histories or window items
    targets: torch.Tensor  # prefix targets or the windows' trained mask
    targets_total: int
    rows_per_batch: int  # prefixes per batch; windows: the mean, for the schedule's steps per epoch
    window_lengths: np.ndarray | None = None  # [E] real items per window (None: prefixes)
    window_targets: np.ndarray | None = None  # [E] trained targets per window

    def __len__(self) -> int:
        return len(self.buckets)

    def first(self, rows: int) -> _TrainingData:
        """The first `rows` rows (a warm-up batch)."""
        targets = self.targets[:rows]
        lengths, counts = self.window_lengths, self.window_targets
        return _TrainingData(self.buckets[:rows], self.rows[:rows], targets,
                             int(targets.sum()) if targets.dtype == torch.bool else len(targets), self.rows_per_batch,
                             None if lengths is None else lengths[:rows], None if counts is None else counts[:rows])

    def epoch_batches(self, batch_size: int, seed: int) -> list[torch.Tensor]:
        """The epoch's batches of row indices, in an order fixed by `seed`."""
        if self.window_lengths is None or self.window_targets is None:
            order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
            return list(order.split(self.rows_per_batch))
        batches = length_bucketed_batches(self.window_lengths, self.window_targets, batch_size,
                                          np.random.default_rng(seed), chunk_rows=64 * self.rows_per_batch)
        return [torch.as_tensor(batch) for batch in batches]


def _on_device(examples: Examples, config: TigerConfig, batch_size: int, device: torch.device) -> _TrainingData:
    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array, device=device)

    if not config.causal_encoder:
        return _TrainingData(tensor(user_buckets(examples.users, config.user_buckets)), tensor(examples.histories),
                             tensor(examples.targets), len(examples), batch_size)
    windows = windows_of_prefixes(examples, config.max_history)
    rows_per_batch = max(1, round(batch_size * len(windows) / max(1, windows.targets)))
    log.info("causal encoder: %d training targets in %d windows of up to %d items, %d windows per batch",
             windows.targets, len(windows), config.max_history, rows_per_batch)
    return _TrainingData(tensor(user_buckets(windows.users, config.user_buckets)), tensor(windows.items),
                         tensor(windows.trained), windows.targets, rows_per_batch,
                         (windows.items >= 0).sum(1), windows.trained.sum(1))


IGNORED = -100  # cross-entropy's ignore_index: window positions that are not training targets


def _batch_loss(model: Tiger, config: TigerConfig, train: TigerTrainConfig, codes: torch.Tensor,
                data: _TrainingData, rows: torch.Tensor, device: torch.device,
                dense: _DenseOnDevice | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy over the batch's target codes, number of targets) for the batch `rows`; with a
    dense head and `dense`, plus train.dense_loss_weight x the dense next-item cross-entropy."""
    trim = device.type != "cuda"  # a padding trim needs a host sync: GPU training keeps shapes fixed instead
    features = dense.features(model) if dense is not None else None  # [N, d]

    def content(histories: torch.Tensor) -> torch.Tensor | None:
        return model.history_content(features, histories) if features is not None else None

    if not config.causal_encoder:
        histories = data.rows[rows]
        if trim:
            histories = trim_leading_padding(histories)
        tokens = encoder_tokens(config, codes, histories, data.buckets[rows], trim_padding=False)
        next_items = data.targets[rows]  # [B]
        target_codes = codes[next_items]
        with _autocast(device):
            memory, keep = model.encode(tokens, content(histories))
            logits = model.decode(memory, keep, model.decoder_input(target_codes[:, :-1]))
        count = torch.tensor(len(rows), device=device)
    else:
        items, trained = data.rows[rows], data.targets[rows]
        if trim:  # leading columns that are padding in every window of the batch
            first = min(int((items >= 0).any(0).nonzero()[0]), items.shape[1] - 2)
            items, trained = items[:, first:], trained[:, first:]
        tokens = encoder_tokens(config, codes, items[:, :-1], data.buckets[rows], trim_padding=False)
        target_codes = codes[items[:, 1:].clamp(min=0)]
        with _autocast(device):
            memory, keep = model.encode(tokens, content(items[:, :-1]))
            logits = model.decode_windows(memory, keep, target_codes)
        # untrained positions are ignored rather than indexed away: a boolean index would sync with the GPU
        target_codes = target_codes.masked_fill(~trained[..., None], IGNORED)
        next_items = items[:, 1:].masked_fill(~trained, IGNORED)  # [B, W]
        count = trained.sum()
    loss = F.cross_entropy(logits.float().reshape(-1, config.codebook_size), target_codes.reshape(-1),
                           ignore_index=IGNORED, label_smoothing=train.label_smoothing)
    if features is not None and dense is not None:
        with _autocast(device):
            states = sequence_states(memory, config.levels, config.causal_encoder)  # [B, d] or [B, W, d]
            dense_logits = model.dense_logits(states, model.item_representations(features, codes))
            # cold items do not exist yet as far as training knows: never negatives, or the head learns to
            # push their content down
            dense_logits = dense_logits.masked_fill(~dense.warm, torch.finfo(dense_logits.dtype).min)
        loss = loss + train.dense_loss_weight * F.cross_entropy(
            dense_logits.float().reshape(-1, dense_logits.shape[-1]), next_items.reshape(-1), ignore_index=IGNORED)
    return loss, count


PROGRESS_EVERY = 50  # steps between progress-bar updates (each one waits for the device)
# steps between the ranks' agreement on a passed deadline (a collective and a host sync each, so not every step)
DEADLINE_CHECK_EVERY = 10


def _train_one_epoch(run: _Run, config: TigerConfig, train: TigerTrainConfig, codes: torch.Tensor,
                     data: _TrainingData, device: torch.device, epoch: int, progress: bool,
                     deadline: float | None = None, dense: _DenseOnDevice | None = None) -> tuple[float, int]:
    """One pass over the training examples in the epoch's seeded order, cut short at `deadline`
    (perf_counter seconds); returns (mean loss, targets trained on).

    No step waits for the device: the loss is summed on it and read once per epoch (and by the progress
    bar every PROGRESS_EVERY steps)."""
    from tqdm.auto import tqdm

    n, parallel = len(data), run.parallel
    run.model.train()
    parallel.seed_dropout(train.seed, epoch)
    # every rank walks the same global batches and trains on its shard of each
    batches = data.epoch_batches(train.batch_size, train.seed * 1_000_003 + epoch)
    # moved to the device in one copy, not one per step
    device_batches = torch.cat(batches).to(device).split([len(batch) for batch in batches])
    total_loss = torch.zeros((), device=device)
    targets = torch.zeros((), dtype=torch.long, device=device)
    done, started = 0, time.perf_counter()
    bar = tqdm(device_batches, desc=f"tiger epoch {epoch + 1}/{train.epochs}", unit="batch",
               disable=not (progress and parallel.primary), mininterval=2.0)
    for step, global_rows in enumerate(bar):
        rows, real = parallel.shard(global_rows)
        loss, count = run.step_loss(config, train, codes, data, rows, device, dense)
        count = count if real else count * 0  # a stand-in row: trained with weight 0
        run.optimizer.zero_grad(set_to_none=True)
        (loss * parallel.global_mean_weight(count)).backward()
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
        run.optimizer.step()
        run.scheduler.step()
        if run.average is not None:
            run.average.update(run.state.step)
        run.state.step += 1
        total_loss += loss.detach() * count
        targets += count
        done += len(global_rows)
        if progress and parallel.primary and step % PROGRESS_EVERY == 0:
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}",
                            ex_s=f"{int(targets) / (time.perf_counter() - started):,.0f}", refresh=False)
        checked = not parallel.distributed or step % DEADLINE_CHECK_EVERY == 0
        if deadline is not None and done < n and checked and parallel.any(time.perf_counter() > deadline, device):
            log.info("the time budget ran out %d of %d examples into epoch %d", done, n, epoch + 1)
            break
    total_loss, targets = parallel.sum(total_loss), parallel.sum(targets)
    return float(total_loss) / max(1, int(targets)), int(targets)


def _plan_to_budget(run: _Run, train: TigerTrainConfig, elapsed: float, epoch_seconds: float) -> None:
    """After every epoch of a budgeted run: decay the learning rate to 0 by the last epoch that fits, not by
    train.epochs (a budget run would otherwise stop near the peak rate and lose the annealing). Re-planned
    from the latest epoch's speed each time: the first epoch is the slowest (warm-up of the allocator and
    the kernels), and a plan fixed after it stopped a 12-minute run after 7 minutes with the rate at 0."""
    if train.max_minutes is None:
        return
    planned = epochs_within_budget(60 * train.max_minutes, elapsed, epoch_seconds, run.state.epoch, train.epochs)
    if planned == run.state.planned_epochs:
        return
    before, run.state.planned_epochs = run.state.planned_epochs, planned
    run.schedule.total_steps = planned * run.steps_per_epoch
    log.info("a %.0f-minute budget fits %d epochs%s: the learning rate decays to 0 by then", train.max_minutes,
             planned, "" if before is None else f" (planned {before} before epoch {run.state.epoch}'s speed)")


def train_tiger(
    item_codes: np.ndarray,
    train_examples: Examples,
    valid_examples: Examples,
    config: TigerConfig,
    train: TigerTrainConfig = TigerTrainConfig(),
    directory: pathlib.Path | None = None,
    stop_after_epochs: int | None = None,
    progress: bool = True,
    initial_weights: pathlib.Path | None = None,
    valid_seen: Seen | None = None,
    dense: DenseInputs | None = None,
) -> tuple[Tiger, TigerState]:
    """Train on every prefix in `train_examples`; after each epoch, the selection metric (NDCG@10,
    models/selection.py) on the selection users of `valid_examples` (all of them unless train.eval_users
    caps it), their `valid_seen` items excluded (None: their histories); the best epoch's weights go to
    `directory/best.pt`; `train.patience` epochs without improvement end the run. A dense head reads
    `dense` (required then); each epoch is scored with its best beam weight (train.beam_weights), and the
    best epoch's weight is `state.beam_weight`. Under a process group every rank trains its shard of each
    batch (models/distributed.py); rank 0 validates and writes the files, and its decisions are shared."""
    parallel = DataParallel.current()
    device = parallel.device(default_device(train.device))
    dense_on_device = _dense_on_device(config, dense, device)
    weights = train.beam_weights if dense_on_device is not None else (0.5,)
    checkpoint = directory / CHECKPOINT_FILE if directory is not None else None
    on_device = _on_device(train_examples, config, train.batch_size, device)
    run = _start_run(config, train, device, math.ceil(len(on_device) / on_device.rows_per_batch), checkpoint,
                     initial_weights)
    state = run.state
    codes = torch.as_tensor(item_codes, device=device)
    trie = SemanticIdTrie(item_codes, config.codebook_size).to(device)
    valid, seen = selection_split(valid_examples, valid_seen, train.eval_users, train.seed)

    started = time.perf_counter()
    # a budget also ends an epoch early: at 10^7 events one epoch alone can outlast the night
    deadline = None if train.max_minutes is None else started + 60 * train.max_minutes
    last_epoch = train.epochs if stop_after_epochs is None else min(train.epochs, state.epoch + stop_after_epochs)
    for epoch in range(state.epoch, last_epoch):
        if state.planned_epochs is not None and epoch >= state.planned_epochs:
            break
        epoch_started = time.perf_counter()
        loss, trained = _train_one_epoch(run, config, train, codes, on_device, device, epoch, progress, deadline,
                                         dense_on_device)
        train_seconds = time.perf_counter() - epoch_started
        if parallel.primary:
            _validate_epoch(run, train, codes, trie, valid, seen, dense, weights, loss, trained, train_seconds,
                            time.perf_counter() - epoch_started, directory)
        # every rank takes rank 0's state and clock, so all plan, stop and resume alike
        run.state = state = parallel.share(run.state)
        elapsed, epoch_seconds = parallel.share((time.perf_counter() - started, time.perf_counter() - epoch_started))
        _plan_to_budget(run, train, elapsed, epoch_seconds)
        if checkpoint is not None and parallel.primary:
            _save(checkpoint, run.checkpoint())
        if train.max_minutes is not None and elapsed > 60 * train.max_minutes:
            log.info("stopping after epoch %d: the %.0f-minute budget is spent", state.epoch, train.max_minutes)
            break
        if train.patience is not None and state.epoch - state.best_epoch >= train.patience:
            log.info("stopping after epoch %d: no better validation NDCG@10 since epoch %d", state.epoch,
                     state.best_epoch)
            break
    run.model.eval()
    return run.scored, state


def _validate_epoch(run: _Run, train: TigerTrainConfig, codes: torch.Tensor, trie: SemanticIdTrie, valid: Examples,
                    seen: list[np.ndarray] | None, dense: DenseInputs | None, weights: Sequence[float], loss: float,
                    trained: int, train_seconds: float, epoch_seconds: float, directory: pathlib.Path | None) -> None:
    """Score the epoch on validation (each beam weight with a dense head), record it in the run's state and
    keep the best epoch's weights in `directory/best.pt`."""
    state = run.state
    by_weight = {w: selection_score(r.items.numpy(), valid.targets) + (r.items.numpy(),)
                 for w, r in recommend_by_weight(run.scored, codes, trie, valid, top_k=10,
                                                 beam_width=train.beam_width, exclude_items=seen, dense=dense,
                                                 beam_weights=weights).items()}
    weight = max(by_weight, key=lambda w: by_weight[w][0])
    score, gains, ranked = by_weight[weight]
    hits, _ = per_user_gains(ranked, valid.targets, 10)
    recall = float(hits.mean()) if len(hits) else 0.0
    state.epoch += 1
    state.history.append({"epoch": state.epoch, "loss": loss, "valid_recall@10": recall,
                          "valid_recall@10_se": standard_error(hits),
                          "valid_ndcg@10": score, "valid_ndcg@10_se": standard_error(gains),
                          "examples_per_s": trained / train_seconds, "examples": trained,
                          "seconds": epoch_seconds})
    log.info("epoch %d: loss %.4f, valid NDCG@10 %.4f +- %.4f, Recall@10 %.4f (%d users), %.0f examples/s",
             state.epoch, loss, score, standard_error(gains), recall, len(hits), trained / train_seconds)
    with_head = dense is not None and run.model.config.dense_head
    if with_head:
        state.history[-1]["beam_weight"] = weight
        log.info("dense head: validation NDCG@10 by beam weight %s", {w: round(v[0], 4) for w, v in by_weight.items()})
    if score > state.best_valid:
        state.best_valid, state.best_epoch = score, state.epoch
        state.beam_weight = weight if with_head else None
        if directory is not None:
            _save(directory / BEST_FILE, {"model": run.scored.state_dict()})


def refit_tiger(item_codes: np.ndarray, examples: Examples, config: TigerConfig, train: TigerTrainConfig,
                epochs: int, path: pathlib.Path, progress: bool = True, dense: DenseInputs | None = None) -> Tiger:
    """A fresh TIGER trained for `epochs` epochs (what validation chose) on `examples` with the same schedule
    shape and no validation, its final weights (or their average) saved to `path` (by rank 0 of a
    distributed run): the served model."""
    parallel = DataParallel.current()
    device = parallel.device(default_device(train.device))
    dense_on_device = _dense_on_device(config, dense, device)
    on_device = _on_device(examples, config, train.batch_size, device)
    train = dataclasses.replace(train, epochs=max(epochs, 1), max_minutes=None)
    run = _start_run(config, train, device, math.ceil(len(on_device) / on_device.rows_per_batch), None, None)
    codes = torch.as_tensor(item_codes, device=device)
    for epoch in range(train.epochs):
        loss, _ = _train_one_epoch(run, config, train, codes, on_device, device, epoch, progress, None,
                                   dense_on_device)
        log.info("TIGER refit epoch %d of %d: loss %.4f", epoch + 1, train.epochs, loss)
    if parallel.primary:
        _save(path, {"model": run.scored.state_dict()})
    return run.scored.eval()


def load_weights(config: TigerConfig, path: pathlib.Path, device: str | None = None) -> Tiger:
    target = default_device(device)
    model = Tiger(config)
    model.load_state_dict(torch.load(path, map_location=target, weights_only=True)["model"])
    return model.to(target).eval()
