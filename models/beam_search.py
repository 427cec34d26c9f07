"""Constrained beam search: TIGER can only write semantic IDs that exist.

A prefix trie over the catalog's codes, stored as one dense table per level:
children[l][p, c] is the prefix id reached from prefix p (of length l) by code
c, or -1; at the last level it is the item's row index. Every finished beam is
therefore a real item, and distinct beams are distinct items (IDs are unique).
Excluded items (the history) prune every branch that holds nothing else, so
a beam is never spent on a dead end. Batched over users; the decoder re-reads its (at most `levels`-token) prefix
each step, which costs little next to the cross-attention.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from models.tiger import Tiger


class SemanticIdTrie:
    def __init__(self, codes: np.ndarray, codebook_size: int):
        """codes [N, levels]: row i is item i's semantic ID; rows must be unique."""
        codes = np.asarray(codes, dtype=np.int64)
        n, levels = codes.shape
        if len(np.unique(codes, axis=0)) != n:
            raise ValueError("semantic IDs are not unique: the trie cannot map an ID back to one item")
        self.levels, self.size, self.items = levels, codebook_size, n
        prefix = np.zeros(n, dtype=np.int64)  # every item starts at the root (prefix id 0)
        tables, reached = [], []
        for level in range(levels):
            if level + 1 < levels:
                _, following = np.unique(codes[:, : level + 1], axis=0, return_inverse=True)
                following = following.reshape(-1)
            else:
                following = np.arange(n)
            table = np.full((int(prefix.max()) + 1, codebook_size), -1, dtype=np.int64)
            table[prefix, codes[:, level]] = following
            tables.append(torch.as_tensor(table))
            reached.append(torch.as_tensor(following))
            prefix = following
        self.children = tables
        self.reached = reached  # reached[l][i]: the node item i passes through after level l's code
        # nodes after each level (items after the last): known here, so no device sync while decoding
        self.nodes = [int(t.max()) + 1 if level + 1 < levels else n for level, t in enumerate(tables)]

    def to(self, device: torch.device) -> SemanticIdTrie:
        self.children = [t.to(device) for t in self.children]
        self.reached = [t.to(device) for t in self.reached]
        return self

    def open_nodes(self, level: int, allowed: torch.Tensor) -> torch.Tensor:
        """[B, nodes after `level`]: how many allowed items (allowed [B, N] bool) lie below each node."""
        counts = torch.zeros(allowed.shape[0], self.nodes[level], device=allowed.device)
        return counts.scatter_add_(1, self.reached[level].expand(allowed.shape[0], -1), allowed.float())


@dataclass
class BeamResult:
    items: torch.Tensor  # [B, k] item row indices, -1 where fewer than k valid items exist
    scores: torch.Tensor  # [B, k] log-probabilities of the whole ID, descending


@torch.no_grad()
def beam_search(
    model: Tiger,
    encoder_tokens: torch.Tensor,
    trie: SemanticIdTrie,
    top_k: int,
    beam_width: int | None = None,
    exclude: torch.Tensor | None = None,
    encoded: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> BeamResult:
    """Top-k items per row of `encoder_tokens` [B, S]. `exclude` [B, N] bool: items that must not
    be returned (e.g. the history); see `exclusion_mask`. `encoded`: `model.encode`'s output when the caller has it (the dense head
    adds content and reads the memory too)."""
    width = max(beam_width or top_k, top_k)
    memory, keep = model.encode(encoder_tokens) if encoded is None else encoded
    b, device = encoder_tokens.shape[0], encoder_tokens.device
    prefix = torch.zeros(b, 1, dtype=torch.long, device=device)
    scores = torch.zeros(b, 1, device=device)
    codes = torch.zeros(b, 1, 0, dtype=torch.long, device=device)
    k = trie.size
    for level in range(trie.levels):
        beams = prefix.shape[1]
        step_memory = memory.repeat_interleave(beams, dim=0)
        step_keep = keep.repeat_interleave(beams, dim=0)
        logits = model.decode(step_memory, step_keep, model.decoder_input(codes.reshape(b * beams, level)))
        log_probs = logits[:, -1].float().log_softmax(-1).view(b, beams, k)
        allowed = None if exclude is None else trie.open_nodes(level, ~exclude)
        prefix, scores, beam, code = select_beams(trie, level, prefix, scores, log_probs, width, allowed)
        codes = torch.cat([codes.gather(1, beam[..., None].expand(-1, -1, level)), code[..., None]], dim=2)
    return BeamResult(items=prefix[:, :top_k], scores=scores[:, :top_k])


def select_beams(trie: SemanticIdTrie, level: int, prefix: torch.Tensor, scores: torch.Tensor,
                 log_probs: torch.Tensor, width: int, allowed_below: torch.Tensor | None = None):
    """One level of the constrained search, shared by the reference and the fast path: extend each live beam
    (prefix [B, beams], -1 = dead) by every code the trie allows (log_probs [B, beams, K]), never into a branch
    whose allowed items (allowed_below, from `open_nodes`) are all excluded, and keep the `width` best.
    Returns (prefix, scores, parent beam, code), each [B, width]."""
    b, beams, k = log_probs.shape
    following = trie.children[level][prefix.clamp(min=0)]  # [B, beams, K]
    valid = (following >= 0) & (prefix >= 0)[..., None]
    if allowed_below is not None:
        valid &= allowed_below.gather(1, following.clamp(min=0).view(b, -1)).view_as(following) > 0
    candidate = torch.where(valid, scores[..., None] + log_probs, torch.full_like(log_probs, -torch.inf))
    top = candidate.view(b, beams * k).topk(min(width, beams * k), dim=1)
    beam, code = top.indices // k, top.indices % k
    prefix = torch.where(torch.isfinite(top.values), following.view(b, -1).gather(1, top.indices),
                         torch.full_like(beam, -1))
    return prefix, top.values, beam, code


def exclusion_mask(items: list[np.ndarray] | torch.Tensor, n_items: int, device: torch.device) -> torch.Tensor:
    """[B, N] bool from per-row item indices (a padded [B, E] tensor with -1, or a list of arrays)."""
    mask = torch.zeros(len(items), n_items + 1, dtype=torch.bool, device=device)  # column N: the -1 padding
    for row, chosen in enumerate(items):
        chosen = torch.as_tensor(chosen, device=device)
        mask[row, torch.where(chosen >= 0, chosen, n_items)] = True
    return mask[:, :n_items]


@torch.no_grad()
def score_all_items(model: Tiger, encoder_tokens: torch.Tensor, item_codes: torch.Tensor) -> torch.Tensor:
    """Exact log-probability of every item's ID [B, N]: the brute force that beam search approximates."""
    memory, keep = model.encode(encoder_tokens)
    b, n = encoder_tokens.shape[0], item_codes.shape[0]
    memory = memory.repeat_interleave(n, 0)
    keep = keep.repeat_interleave(n, 0)
    targets = item_codes.repeat(b, 1)  # [B*N, L]
    logits = model.decode(memory, keep, model.decoder_input(targets[:, :-1])).float().log_softmax(-1)
    return logits.gather(2, targets[..., None]).squeeze(-1).sum(1).view(b, n)
