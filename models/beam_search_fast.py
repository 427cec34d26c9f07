"""Constrained beam search, fast path: the same search as `beam_search.beam_search`, decoded incrementally.

The reference re-decodes every beam's whole prefix at each level and repeats the
encoder memory once per beam, so each level recomputes the cross-attention keys
and values of the memory `beams` times. Here:

- the memory's keys and values are projected once per user and layer, and every
  beam of a user attends to them as one more query row (no per-beam copy);
- each beam's self-attention keys and values are cached and grown by one
  position per level, reordered with the beams;
- only the last position is decoded, and only the head rows of its level;
- the per-level counts of allowed items under each trie node (exclusions) are
  built once per batch, with no host sync inside the loop.

Both paths choose beams with the same `select_beams` step; what differs is how
the log-probabilities are decoded. Same items and scores as the reference
(within float rounding); tests check it
on random models and tries. Runs under `torch.inference_mode()`; bf16 on GPU
comes from the caller's autocast.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import torch
from torch.nn import functional as F

from models.beam_search import BeamResult, SemanticIdTrie, select_beams
from models.tiger import BOS, Attention, DecoderLayer, Tiger, code_token


def _heads(x: torch.Tensor, attention: Attention) -> torch.Tensor:
    """[..., heads * head_dim] -> [..., heads, head_dim]."""
    return x.view(*x.shape[:-1], attention.heads, attention.head_dim)


def _allowed_below(trie: SemanticIdTrie, exclude: torch.Tensor | None) -> list[torch.Tensor] | None:
    """Per level, [B, nodes after the level]: allowed items below each node (None: nothing excluded)."""
    if exclude is None:
        return None
    return [trie.open_nodes(level, ~exclude) for level in range(trie.levels)]


class IncrementalDecoder:
    """TIGER's decoder one level at a time over [B, rows] prefixes per user: the memory's keys and values
    are projected once per user and layer (every row of a user attends to them as one more query), each
    row's self-attention keys and values are cached and grown by one position per level, and only the head
    rows of the level are scored. The fast beam search and cold-item scoring both decode with it."""

    def __init__(self, model: Tiger, memory: torch.Tensor, keep: torch.Tensor):
        self.model = model
        self.layers = cast(list[DecoderLayer], list(model.decoder))
        self.memory_mask = keep[:, None, None, :]  # [B, 1, 1, S]: every row sees the same memory
        b = memory.shape[0]
        self.cross = []  # per layer: the memory's keys and values, [B, H, S, hd] each, projected once
        for layer in self.layers:
            attention = layer.cross_attention
            k, v = attention.key_value(memory).view(
                b, memory.shape[1], 2, attention.heads, attention.head_dim).permute(2, 0, 3, 1, 4)
            self.cross.append((k, v))
        self.cached_keys: list[torch.Tensor | None] = [None] * len(self.layers)  # [B, rows, H, t, hd]
        self.cached_values: list[torch.Tensor | None] = [None] * len(self.layers)

    def step(self, tokens: torch.Tensor, level: int) -> torch.Tensor:
        """tokens [B, rows] (BOS at level 0, else the code tokens of level - 1) -> log-probabilities of the
        level's codes [B, rows, K]."""
        b, rows = tokens.shape
        x = self.model.embed(tokens) + self.model.decoder_positions.weight[level]  # [B, rows, d]
        for i, layer in enumerate(self.layers):
            x = x + _self_attention_step(layer.self_attention, layer.norms[0](x), self.cached_keys,
                                         self.cached_values, i)
            attention = layer.cross_attention
            q = _heads(attention.query(layer.norms[1](x)), attention).transpose(1, 2)  # [B, H, rows, hd]
            out = F.scaled_dot_product_attention(q, *self.cross[i], attn_mask=self.memory_mask)
            x = x + attention.out(out.transpose(1, 2).reshape(b, rows, -1))
            x = x + layer.feed_forward(layer.norms[2](x))
        k_codes = self.model.config.codebook_size
        head_rows = slice(level * k_codes, (level + 1) * k_codes)  # the head rows that score this level
        logits = F.linear(self.model.decoder_norm(x), self.model.head.weight[head_rows],
                          self.model.head.bias[head_rows])
        return logits.float().log_softmax(-1)

    def keep_rows(self, parents: torch.Tensor) -> None:
        """Row j of each user continues row parents[:, j]'s prefix ([B, rows'] indices)."""
        for cache in (self.cached_keys, self.cached_values):
            for i, tensor in enumerate(cache):
                assert tensor is not None
                index = parents.view(*parents.shape, 1, 1, 1).expand(-1, -1, *tensor.shape[2:])
                cache[i] = tensor.gather(1, index)


@torch.inference_mode()
def fast_beam_search(
    model: Tiger,
    encoder_tokens: torch.Tensor,
    trie: SemanticIdTrie,
    top_k: int,
    beam_width: int | None = None,
    exclude: torch.Tensor | None = None,
    encoded: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> BeamResult:
    """Top-k items per row of `encoder_tokens` [B, S]; `exclude` [B, N] bool and `encoded` as in the
    reference."""
    width = max(beam_width or top_k, top_k)
    memory, keep = model.encode(encoder_tokens) if encoded is None else encoded  # [B, S, d], [B, S]
    b, device = encoder_tokens.shape[0], encoder_tokens.device
    decoder = IncrementalDecoder(model, memory, keep)
    allowed = _allowed_below(trie, exclude)
    prefix = torch.zeros(b, 1, dtype=torch.long, device=device)
    scores = torch.zeros(b, 1, device=device)
    tokens = torch.full((b, 1), BOS, dtype=torch.long, device=device)
    for level in range(trie.levels):
        log_probs = decoder.step(tokens, level)  # [B, beams, K]
        prefix, scores, beam, code = select_beams(trie, level, prefix, scores, log_probs, width,
                                                  None if allowed is None else allowed[level])
        if level + 1 == trie.levels:
            break
        tokens = code_token(model.config, level, code)
        decoder.keep_rows(beam)  # the surviving beams keep their parents' prefixes
    return BeamResult(items=prefix[:, :top_k], scores=scores[:, :top_k])


def _self_attention_step(attention: Attention, h: torch.Tensor, cached_keys: list, cached_values: list,
                         layer: int) -> torch.Tensor:
    """One new position per beam attending to its cached prefix and itself (causal by construction)."""
    b, beams, _ = h.shape
    q = _heads(attention.query(h), attention)  # [B, beams, H, hd]
    k, v = attention.key_value(h).view(b, beams, 2, attention.heads, attention.head_dim).unbind(2)
    k, v = k[:, :, :, None], v[:, :, :, None]  # [B, beams, H, 1, hd]
    if cached_keys[layer] is not None:
        k = torch.cat([cached_keys[layer], k], dim=3)
        v = torch.cat([cached_values[layer], v], dim=3)
    cached_keys[layer], cached_values[layer] = k, v
    weights = (q[:, :, :, None] @ k.transpose(-1, -2)) / math.sqrt(attention.head_dim)  # [B, beams, H, 1, t]
    out = weights.softmax(-1) @ v  # [B, beams, H, 1, hd]
    return attention.out(out.reshape(b, beams, -1))


def exclusion_mask_fast(items: list[np.ndarray] | np.ndarray | torch.Tensor, n_items: int,
                        device: torch.device) -> torch.Tensor:
    """[B, N] bool from per-row item rows (a padded [B, E] array with -1, or a list of arrays): one scatter,
    no Python loop over rows."""
    if isinstance(items, list):
        lengths = np.fromiter((len(row) for row in items), dtype=np.int64, count=len(items))
        flat = np.concatenate(items).astype(np.int64) if len(items) and lengths.sum() else np.zeros(0, np.int64)
        rows = torch.as_tensor(np.repeat(np.arange(len(items)), lengths), device=device)
        columns = torch.as_tensor(flat, device=device)
    else:
        padded = torch.as_tensor(items, device=device)
        rows = torch.arange(padded.shape[0], device=device).repeat_interleave(padded.shape[1])
        columns = padded.reshape(-1)
    mask = torch.zeros(len(items), n_items + 1, dtype=torch.bool, device=device)  # column N: the -1 padding
    mask[rows, torch.where(columns >= 0, columns, n_items)] = True
    return mask[:, :n_items]


def batch_size_for(model: Tiger, width: int, device: torch.device, cpu_default: int = 256) -> int:
    """Users per beam-search batch: on a GPU, what half of the free memory holds (the self-attention cache
    of every beam, the memory's keys and values, the candidate scores); on CPU, `cpu_default`."""
    if device.type != "cuda":
        return cpu_default
    config = model.config
    inner = config.heads * config.head_dim
    memory_tokens = 1 + config.max_history * config.levels
    per_user = 4 * (2 * config.decoder_layers * inner * (width * config.levels + memory_tokens)
                    + 3 * width * config.codebook_size + memory_tokens * config.d_model * 4)
    free, _ = torch.cuda.mem_get_info(device)
    return int(max(16, min(16_384, free // 2 // per_user)))
