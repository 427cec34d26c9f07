"""TIGER's own route to new items (Rajput et al., 2023, section 4.2): a share of each list is kept for cold
items, items that have a semantic ID (from their content) but no training event, ranked by the decoder.

The beam rarely reaches a cold item: the decoder never saw its code tuple as a target. It has seen every
first code, though, as the first code of trained items: so a cold item is ranked by the log-probability of
its first code, and its deeper codes (a tuple no training event held) only order cold items that share the
first one. The paper's epsilon, the largest share of a list that cold items may take, is a product choice
(how much exposure new items get), not something validation can choose: a validation split holds few or no
new-item targets on the night items arrive. The paper's figures use 0.1.

Cost: one decoder step per user gives every cold item's first code; the deeper codes are decoded only for a
shortlist of the best (SHORTLIST), as a beam of that width would be, whatever the number of cold items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from models.beam_search import BeamResult
from models.beam_search_fast import IncrementalDecoder
from models.tiger import BOS, Tiger, code_token

COLD_SHARE = 0.1
# cold items per user whose deeper codes are decoded (the best by first code): the deeper codes only order
# items that share a first code, so the shortlist need only hold the best first codes' items
SHORTLIST = 32


@dataclass(frozen=True)
class ColdItems:
    """The item rows that have a semantic ID but no training event, and the share of a list they may take."""

    rows: np.ndarray
    share: float = COLD_SHARE

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"cold-start share must be within [0, 1], got {self.share}")


def cold_slots(share: float, top_k: int) -> int:
    """How many of a top-k list cold items may take: share x k, rounded half up (0.1 of 10 or of 5 is 1)."""
    return min(top_k, int(share * top_k + 0.5))


@torch.inference_mode()
def best_cold_items(model: Tiger, memory: torch.Tensor, keep: torch.Tensor, cold_rows: torch.Tensor,
                    cold_codes: torch.Tensor, exclude: torch.Tensor | None, count: int) -> BeamResult:
    """Encoder memory [B, S, d] and its mask [B, S] (model.encode), cold item rows [C] and codes [C, L],
    items never to return ([B, N] bool or None) -> each user's `count` best cold items [B, count] (-1 / -inf
    where fewer), by the log-probability of the first code, then of the deeper semantic codes given it
    (teacher forced). The last code, which only tells colliding items apart, is left out: a new item's is
    arbitrary. A cold item's score is the log-probability of its semantic codes. No host sync."""
    b, c = memory.shape[0], cold_codes.shape[0]
    missing = torch.tensor(float("-inf"), device=memory.device)
    semantic = cold_codes[:, :-1] if model.config.levels > 1 else cold_codes  # [C, L']
    decoder = IncrementalDecoder(model, memory, keep)
    bos = torch.full((b, 1), BOS, dtype=torch.long, device=memory.device)
    first = decoder.step(bos, 0)[:, 0][:, semantic[:, 0]]  # [B, C]: log p(each cold item's first code)
    if exclude is not None:
        first = torch.where(exclude[:, cold_rows], missing, first)
    # the shortlist: the best first codes' items (a stable sort: ties keep catalog order)
    width = min(c, max(SHORTLIST, count))
    short = first.argsort(dim=1, descending=True, stable=True)[:, :width]  # [B, m] into the cold items
    first = first.gather(1, short)
    codes = semantic[short]  # [B, m, L']
    decoder.keep_rows(torch.zeros_like(short))  # every shortlisted item continues the user's BOS row
    rest = torch.zeros_like(first)
    for level in range(1, semantic.shape[1]):
        tokens = code_token(model.config, level - 1, codes[..., level - 1])
        rest = rest + decoder.step(tokens, level).gather(2, codes[..., level, None]).squeeze(-1)
    # first code decides, deeper codes order within it: a stable sort by the second key, then by the first
    by_rest = rest.argsort(dim=1, descending=True, stable=True)
    order = by_rest.gather(1, first.gather(1, by_rest).argsort(dim=1, descending=True, stable=True))
    best = order[:, :count]
    usable = first.gather(1, best).isfinite()
    items = torch.where(usable, cold_rows[short.gather(1, best)], -1)
    scores = torch.where(usable, (first + rest).gather(1, best), missing)
    if items.shape[1] < count:  # fewer cold items than asked
        items = F.pad(items, (0, count - items.shape[1]), value=-1)
        scores = F.pad(scores, (0, count - scores.shape[1]), value=float("-inf"))
    return BeamResult(items, scores)


@torch.inference_mode()
def with_cold_places(ranked: BeamResult, cold: BeamResult, top_k: int, slots: int) -> BeamResult:
    """A ranked list [B, >= top_k - slots] whose last `slots` places go to the first cold items of `cold`
    ([B, >= slots], best first: best_cold_items) not already in the places kept. A place no cold item can
    take keeps the ranked list's own item, unless a cold place already holds it. Returns [B, top_k]."""
    keep_width = top_k - slots
    kept_items, kept_scores = ranked.items[:, :keep_width], ranked.scores[:, :keep_width].float()
    fresh = (cold.items >= 0) & ~(cold.items[:, :, None] == kept_items[:, None, :]).any(-1)  # [B, n]
    first_fresh = (~fresh).int().argsort(dim=1, stable=True)[:, :slots]  # fresh ones first, in order
    usable = fresh.gather(1, first_fresh)
    missing = torch.tensor(float("-inf"), device=cold.scores.device)
    cold_items = torch.where(usable, cold.items.gather(1, first_fresh), -1)
    cold_scores = torch.where(usable, cold.scores.gather(1, first_fresh).float(), missing)
    fallback_items = ranked.items[:, keep_width:top_k]
    fallback_scores = ranked.scores[:, keep_width:top_k].float()
    if fallback_items.shape[1] < slots:  # a ranked list narrower than top_k
        pad = slots - fallback_items.shape[1]
        fallback_items = F.pad(fallback_items, (0, pad), value=-1)
        fallback_scores = F.pad(fallback_scores, (0, pad), value=float("-inf"))
    taken = torch.where(usable, cold_items, -2)  # -2 matches no item, nor the -1 of an empty place
    duplicate = (fallback_items[:, :, None] == taken[:, None, :]).any(-1)
    fallback_items = torch.where(duplicate, -1, fallback_items)
    fallback_scores = torch.where(duplicate, missing, fallback_scores)
    items = torch.cat([kept_items, torch.where(usable, cold_items, fallback_items)], dim=1)
    scores = torch.cat([kept_scores, torch.where(usable, cold_scores, fallback_scores)], dim=1)
    return BeamResult(items, scores)
