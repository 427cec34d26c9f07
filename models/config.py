"""Frozen configs of the torch models. No torch import here, so job CLIs and DAGs stay light."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RQVAEConfig:
    input_dim: int = 384
    hidden_dims: tuple[int, ...] = (512, 256, 128)
    latent_dim: int = 32
    levels: int = 3
    codebook_size: int = 256
    beta: float = 0.25  # commitment weight


@dataclass(frozen=True)
class RQVAETrainConfig:
    epochs: int = 300
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    kmeans_init: bool = True
    kmeans_init_samples: int = 65_536  # the first batch for the k-means init: big enough for 256 codes
    kmeans_iters: int = 25
    reseed_dead_codes: bool = True  # after every epoch, codes no item chose move onto live residuals
    checkpoint_every: int = 25  # epochs; 0 = never
    normalize_inputs: bool = True  # unit-length inputs: text and ALS vectors on one scale
    device: str | None = None  # None: cuda when present, else cpu
