"""Which torch device a job runs on when it is not told: the GPU when there is one."""

from __future__ import annotations

import torch


def default_device(requested: str | None = None) -> torch.device:
    return torch.device(requested or ("cuda" if torch.cuda.is_available() else "cpu"))
