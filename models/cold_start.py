"""TIGER's own route to new items (Rajput et al., 2023, section 4.2): a share of each list is kept for cold
items, items that have a semantic ID (from their content) but no training event, ranked by the decoder.

The beam rarely reaches a cold item: the decoder never saw its code tuple as a target. It has seen every
first code, though, as the first code of trained items: so a cold item is ranked by the log-probability of
its first code, and its deeper codes (a tuple no training event held) only order cold items that share the
first one. The paper's epsilon, the largest share of a list that cold items may take, is a product choice
(how much exposure new items get), not something validation can choose: a validation split holds few or no
new-item targets on the night items arrive. The paper's figures use 0.1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from models.beam_search import BeamResult
from models.tiger import Tiger

COLD_SHARE = 0.1
# decoder rows (users x cold items) scored at once: bounds the memory of one chunk
_ROWS_PER_CHUNK = 16_384


@dataclass(frozen=True)
class ColdItems:
    """The item rows that have a semantic ID but no training event, and the share of a list they may take."""

    rows: np.ndarray
    share: float = COLD_SHARE


def cold_slots(share: float, top_k: int) -> int:
    """How many of a top-k list cold items may take: share x k, rounded half up (0.1 of 10 or of 5 is 1)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"cold-start share must be within [0, 1], got {share}")
    return min(top_k, int(share * top_k + 0.5))


@torch.inference_mode()
def cold_item_scores(model: Tiger, memory: torch.Tensor, keep: torch.Tensor,
                     cold_codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder memory [B, S, d] and its mask [B, S] (model.encode), cold items' codes [C, L] ->
    (log p(first code) [B, C], log p(the deeper semantic codes | first) [B, C]), by teacher forcing. The
    last code, which only tells colliding items apart, is left out: a new item's is arbitrary."""
    b, c = memory.shape[0], cold_codes.shape[0]
    semantic = cold_codes[:, :-1] if model.config.levels > 1 else cold_codes  # [C, L-1]
    inputs = model.decoder_input(semantic[:, :-1])  # [C, L-1]: BOS + all but the last semantic code
    first, rest = [], []
    per_chunk = max(1, _ROWS_PER_CHUNK // max(b, 1))
    for start in range(0, c, per_chunk):
        codes = semantic[start:start + per_chunk]  # [c', L-1]
        n = codes.shape[0]
        logits = model.decode(memory.repeat_interleave(n, 0), keep.repeat_interleave(n, 0),
                              inputs[start:start + per_chunk].repeat(b, 1)).float().log_softmax(-1)  # [B*c', L-1, K]
        chosen = logits.gather(2, codes.repeat(b, 1)[..., None]).squeeze(-1).view(b, n, -1)  # [B, c', L-1]
        first.append(chosen[..., 0])
        rest.append(chosen[..., 1:].sum(-1))
    return torch.cat(first, dim=1), torch.cat(rest, dim=1)


@torch.inference_mode()
def with_cold_slots(ranked: BeamResult, cold_rows: torch.Tensor, first: torch.Tensor, rest: torch.Tensor,
                    exclude: torch.Tensor | None, top_k: int, slots: int) -> BeamResult:
    """A ranked list [B, >= top_k - slots] whose last `slots` places go to the best cold items [C] (by first
    code, then by the deeper codes) that are neither excluded ([B, N] bool) nor already in the kept places;
    a cold item's score is the log-probability of its semantic codes. Fewer cold items than slots leave
    the ranked list's own items there. On the device, no host sync. Returns [B, top_k]."""
    keep_width = top_k - slots
    kept_items, kept_scores = ranked.items[:, :keep_width], ranked.scores[:, :keep_width].float()
    rows = cold_rows[None].expand(len(kept_items), -1)  # [B, C]
    blocked = (rows[:, :, None] == kept_items[:, None, :]).any(-1)
    if exclude is not None:
        blocked |= exclude.gather(1, rows)
    missing = torch.tensor(float("-inf"), device=first.device)
    first = torch.where(blocked, missing, first)
    # first code decides, deeper codes order within it: a stable sort by the second key, then by the first
    by_rest = rest.argsort(dim=1, descending=True, stable=True)
    order = by_rest.gather(1, first.gather(1, by_rest).argsort(dim=1, descending=True, stable=True))
    best = order[:, :slots]  # [B, slots]
    usable = first.gather(1, best).isfinite()
    cold_items = torch.where(usable, rows.gather(1, best), -1)
    cold_scores = torch.where(usable, (first + rest).gather(1, best), missing)
    # a slot no cold item can take keeps the ranked list's own item there
    fallback_items = ranked.items[:, keep_width:top_k]
    fallback_scores = ranked.scores[:, keep_width:top_k].float()
    if fallback_items.shape[1] < slots:  # a ranked list narrower than top_k
        pad = slots - fallback_items.shape[1]
        fallback_items = torch.nn.functional.pad(fallback_items, (0, pad), value=-1)
        fallback_scores = torch.nn.functional.pad(fallback_scores, (0, pad), value=float("-inf"))
    taken = torch.where(usable, cold_items, -2)  # -2 matches no item, nor the -1 of an empty place
    duplicate = (fallback_items[:, :, None] == taken[:, None, :]).any(-1)
    fallback_items = torch.where(duplicate, -1, fallback_items)
    fallback_scores = torch.where(duplicate, missing, fallback_scores)
    items = torch.cat([kept_items, torch.where(usable, cold_items, fallback_items)], dim=1)
    scores = torch.cat([kept_scores, torch.where(usable, cold_scores, fallback_scores)], dim=1)
    return BeamResult(items, scores)
