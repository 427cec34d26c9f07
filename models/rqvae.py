"""RQ-VAE as in TIGER: an MLP autoencoder whose latent is quantized by residual codebooks.

encoder 512-256-128 -> 32-d latent z; level l picks the nearest code to the
residual r_l (r_0 = z, r_{l+1} = r_l - e_l); the decoder reads the sum of the
chosen codes through a straight-through estimator. Loss per item:
||x - x_hat||^2 + sum_l ||sg(r_l) - e_l||^2 + beta ||r_l - sg(e_l)||^2.

Training is deterministic for a seed and resumable: every epoch's randomness
(shuffle, dead-code re-seeding) comes from a generator seeded by (seed, epoch),
so resuming at epoch e replays exactly what an uninterrupted run would do.
Torch only: no Spark, no Delta.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import pathlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from models.config import RQVAEConfig, RQVAETrainConfig
from models.device import default_device

__all__ = ["RQVAE", "RQVAEConfig", "RQVAETrainConfig", "encode_codes", "load_rqvae", "save_rqvae", "train_rqvae"]

log = logging.getLogger(__name__)

WEIGHTS_FILE = "rqvae.pt"
CONFIG_FILE = "rqvae_config.json"


def _mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@dataclass
class Quantized:
    codes: torch.Tensor  # [B, levels] long
    quantized: torch.Tensor  # [B, latent] sum of the chosen codes
    codebook_loss: torch.Tensor
    commitment_loss: torch.Tensor


class RQVAE(nn.Module):
    def __init__(self, config: RQVAEConfig):
        super().__init__()
        self.config = config
        self.encoder = _mlp([config.input_dim, *config.hidden_dims, config.latent_dim])
        self.decoder = _mlp([config.latent_dim, *reversed(config.hidden_dims), config.input_dim])
        self.codebooks = nn.Parameter(torch.randn(config.levels, config.codebook_size, config.latent_dim) * 0.01)

    @staticmethod
    def _nearest(residual: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
        distances = (
            residual.pow(2).sum(1, keepdim=True) - 2 * residual @ codebook.T + codebook.pow(2).sum(1)[None, :]
        )
        return distances.argmin(1)

    def quantize(self, z: torch.Tensor) -> Quantized:
        residual = z
        total = torch.zeros_like(z)
        codes, codebook_loss, commitment_loss = [], z.new_zeros(()), z.new_zeros(())
        for level in range(self.config.levels):
            codebook = self.codebooks[level]
            index = self._nearest(residual.detach(), codebook)
            chosen = codebook[index]
            codebook_loss = codebook_loss + (residual.detach() - chosen).pow(2).sum(1).mean()
            commitment_loss = commitment_loss + (residual - chosen.detach()).pow(2).sum(1).mean()
            residual = residual - chosen.detach()
            total = total + chosen
            codes.append(index)
        return Quantized(torch.stack(codes, 1), total, codebook_loss, commitment_loss)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Quantized, dict[str, torch.Tensor]]:
        z = self.encoder(x)
        q = self.quantize(z)
        z_q = z + (q.quantized - z).detach()  # straight-through: decoder gradients reach the encoder
        reconstruction = self.decoder(z_q)
        recon_loss = (reconstruction - x).pow(2).sum(1).mean()
        loss = recon_loss + q.codebook_loss + self.config.beta * q.commitment_loss
        return reconstruction, q, {
            "loss": loss, "reconstruction": recon_loss,
            "codebook": q.codebook_loss, "commitment": q.commitment_loss,
        }

    @torch.no_grad()
    def residuals(self, z: torch.Tensor) -> list[torch.Tensor]:
        """The residual each level quantizes: [r_0, ..., r_{L-1}]."""
        out, residual = [], z
        for level in range(self.config.levels):
            out.append(residual)
            residual = residual - self.codebooks[level][self._nearest(residual, self.codebooks[level])]
        return out


def _generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def prepare_inputs(vectors: np.ndarray, normalize: bool) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(vectors, dtype=np.float32))
    if normalize:
        x = nn.functional.normalize(x, dim=1)
    return x


@torch.no_grad()
def kmeans_init(model: RQVAE, sample: torch.Tensor, iters: int, seed: int) -> None:
    """Codebooks <- k-means (faiss) of each level's residuals on the first batch."""
    import faiss

    residual = model.encoder(sample).float()
    k = model.config.codebook_size
    for level in range(model.config.levels):
        points = np.ascontiguousarray(residual.cpu().numpy(), dtype=np.float32)
        if len(points) < k:  # a catalog smaller than a codebook: every item a code, the rest near them
            rng = np.random.default_rng(seed + level)
            picks = np.concatenate([np.arange(len(points)), rng.integers(0, len(points), k - len(points))])
            centroids_np = points[picks] + 1e-3 * rng.standard_normal((k, points.shape[1])).astype(np.float32)
        else:
            kmeans = faiss.Kmeans(points.shape[1], k, niter=iters, seed=seed + level, verbose=False)
            kmeans.cp.min_points_per_centroid = 1  # small catalogs: fewer than 39 points per code is fine
            kmeans.train(points)
            centroids_np = kmeans.centroids
        centroids = torch.as_tensor(centroids_np, device=residual.device)
        model.codebooks.data[level] = centroids
        residual = residual - centroids[model._nearest(residual, centroids)]


@torch.no_grad()
def reseed_dead_codes(model: RQVAE, usage: torch.Tensor, sample: torch.Tensor, generator: torch.Generator) -> int:
    """Codes that no item chose this epoch are moved onto random residuals of that level."""
    residuals = model.residuals(model.encoder(sample))
    moved = 0
    for level in range(model.config.levels):
        dead = torch.nonzero(usage[level] == 0).flatten()
        if len(dead) == 0:
            continue
        pick = torch.randint(len(sample), (len(dead),), generator=generator).to(sample.device)
        model.codebooks.data[level, dead] = residuals[level][pick]
        moved += len(dead)
    return moved


@dataclass
class TrainState:
    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def _save_checkpoint(path: pathlib.Path, model: RQVAE, optimizer: torch.optim.Optimizer, state: TrainState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "epoch": state.epoch, "history": state.history, "config": dataclasses.asdict(model.config),
    }, tmp)
    os.replace(tmp, path)  # a crash mid-save never leaves a truncated checkpoint


def effective_batch_size(n: int, train: RQVAETrainConfig) -> int:
    """train.batch_size, or smaller so that an epoch of n items takes at least train.min_steps_per_epoch steps."""
    return max(1, min(train.batch_size, math.ceil(n / max(1, train.min_steps_per_epoch))))


def train_rqvae(
    vectors: np.ndarray,
    config: RQVAEConfig,
    train: RQVAETrainConfig = RQVAETrainConfig(),
    checkpoint: pathlib.Path | None = None,
    stop_after_epochs: int | None = None,
    progress: bool = True,
) -> tuple[RQVAE, TrainState]:
    """Train on `vectors` [N, input_dim]; resumes from `checkpoint` when it exists.

    `stop_after_epochs` ends this call early (a time-sliced job; the next call resumes).
    """
    device = default_device(train.device)
    torch.manual_seed(train.seed)
    model = RQVAE(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    x = prepare_inputs(vectors, train.normalize_inputs).to(device)
    n = len(x)
    batch_size = effective_batch_size(n, train)
    state = TrainState()
    if checkpoint is not None and checkpoint.exists():
        saved = torch.load(checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = TrainState(saved["epoch"], saved["history"])
        log.info("resumed RQ-VAE from %s at epoch %d", checkpoint, state.epoch)
    elif train.kmeans_init:
        order = torch.randperm(n, generator=_generator(train.seed, -1)).to(device)
        kmeans_init(model, x[order[: train.kmeans_init_samples]], train.kmeans_iters, train.seed)

    from tqdm.auto import tqdm

    last_epoch = train.epochs if stop_after_epochs is None else min(train.epochs, state.epoch + stop_after_epochs)
    bar = tqdm(range(state.epoch, last_epoch), desc="rq-vae", unit="epoch", disable=not progress, mininterval=2.0)
    started = time.perf_counter()
    for epoch in bar:
        model.train()
        generator = _generator(train.seed, epoch)
        order = torch.randperm(n, generator=generator).to(device)
        usage = torch.zeros(config.levels, config.codebook_size, dtype=torch.long, device=device)
        sums = {"loss": 0.0, "reconstruction": 0.0, "codebook": 0.0, "commitment": 0.0}
        for start in range(0, n, batch_size):
            batch = x[order[start : start + batch_size]]
            _, q, losses = model(batch)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            optimizer.step()
            for level in range(config.levels):
                usage[level] += torch.bincount(q.codes[:, level], minlength=config.codebook_size)
            for key in sums:
                sums[key] += float(losses[key].detach()) * len(batch)
        record = {key: value / n for key, value in sums.items()}
        record["epoch"] = epoch + 1
        record["dead_codes"] = float((usage == 0).sum())
        if train.reseed_dead_codes and record["dead_codes"] and epoch + 1 < train.epochs:
            model.eval()
            reseed_dead_codes(model, usage, x[order[: train.kmeans_init_samples]], generator)
        state.epoch = epoch + 1
        state.history.append(record)
        bar.set_postfix(loss=f"{record['loss']:.4f}", dead=int(record["dead_codes"]), refresh=False)
        if checkpoint is not None and train.checkpoint_every and (
            state.epoch % train.checkpoint_every == 0 or state.epoch == last_epoch
        ):
            _save_checkpoint(checkpoint, model, optimizer, state)
    log.info("trained RQ-VAE to epoch %d in %.1fs (batches of %d)", state.epoch, time.perf_counter() - started,
             batch_size)
    model.eval()
    return model, state


@torch.no_grad()
def encode_codes(model: RQVAE, vectors: np.ndarray, normalize: bool, batch_size: int = 8192) -> np.ndarray:
    """[N, levels] int32 codes for `vectors`: the semantic ID without its collision token."""
    model.eval()
    device = next(model.parameters()).device
    x = prepare_inputs(vectors, normalize)
    out = [
        model.quantize(model.encoder(x[s : s + batch_size].to(device))).codes.cpu()
        for s in range(0, len(x), batch_size)
    ]
    return torch.cat(out).numpy().astype(np.int32) if out else np.zeros((0, model.config.levels), np.int32)


@torch.no_grad()
def reconstruction_loss(model: RQVAE, vectors: np.ndarray, normalize: bool) -> float:
    device = next(model.parameters()).device
    x = prepare_inputs(vectors, normalize).to(device)
    return float(model(x)[2]["reconstruction"]) if len(x) else 0.0


def save_rqvae(model: RQVAE, train: RQVAETrainConfig, directory: pathlib.Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), directory / WEIGHTS_FILE)
    (directory / CONFIG_FILE).write_text(json.dumps({
        "model": dataclasses.asdict(model.config), "train": dataclasses.asdict(train),
    }, indent=2))


def load_rqvae(directory: str | pathlib.Path, device: str | None = None) -> tuple[RQVAE, RQVAETrainConfig]:
    directory = pathlib.Path(directory)
    saved: dict[str, Any] = json.loads((directory / CONFIG_FILE).read_text())
    model_cfg = saved["model"]
    model_cfg["hidden_dims"] = tuple(model_cfg["hidden_dims"])
    model = RQVAE(RQVAEConfig(**model_cfg))
    target = default_device(device)
    model.load_state_dict(torch.load(directory / WEIGHTS_FILE, map_location=target, weights_only=True))
    return model.to(target).eval(), RQVAETrainConfig(**saved["train"])
