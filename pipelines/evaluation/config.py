"""The evaluation baselines' settings (no torch import: job CLIs and DAGs read these)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SASRecConfig:
    max_length: int = 50
    d_model: int = 64
    blocks: int = 2
    heads: int = 1
    dropout_grid: tuple[float, ...] = (0.2, 0.5)  # 0.2 on MovieLens, 0.5 on Amazon in the SASRec paper
    lr: float = 1e-3
    batch_size: int = 128
    max_epochs: int = 200
    patience: int = 10  # epochs without a better validation NDCG@10 before a candidate stops
    # wall-clock budget per dropout candidate: a Beauty epoch (22k users, 12k items) takes ~27 s on 2 CPU cores
    max_minutes: float | None = 15.0
    seed: int = 0
    device: str | None = None
