"""TWIN-V2 ranker: multi-head target attention over a user's behaviour clusters. Torch only.

Per cluster c and head h (TWIN's split of the keys):
    alpha[c, h]  = (K_h W_h)[c, h] . (q W_q)[h] / sqrt(d_k)  +  sum_f beta[h, f] g_f(K_c[c, f])
    alpha'[c, h] = alpha[c, h] + ln(n_c)                                           (TWIN-V2)
K_h: item-inherent features of the cluster's representative item (its content
embedding, semantic-ID embeddings and a hashed item-ID embedding): their
projection K_h W_h depends on the item only, so `precompute_item_keys` computes
it once per item ahead of time.
K_c: user-item cross features (the cluster's mean completion, rating, recency):
each is squeezed to a scalar by its own tiny projection g_f and enters as a
linear bias. Two stages with the same parameters (TWIN's consistency): keep
the top-k clusters by alpha' (mean over heads), then softmax-attend over them.
The ln(n) term makes a cluster of n identical events weigh exactly what the
n raw events would: exp(alpha + ln n) = n exp(alpha).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from models.config import TwinConfig


@dataclass
class ClusterBatch:
    """A batch of (user, target) pairs and the user's clusters, padded to C clusters."""

    target_items: torch.Tensor  # [B] item rows
    cluster_items: torch.Tensor  # [B, C] representative item rows (-1 = padding)
    cluster_sizes: torch.Tensor  # [B, C] n (>= 1 where real)
    cross: torch.Tensor  # [B, C, F] cross features (0 where unknown)


class ItemTower(nn.Module):
    """Item-inherent representation: content embedding + semantic-ID embeddings (+ a hashed item-ID embedding).

    `tokens` [..., code_levels + 1]: the item's semantic-ID codes, then a stable non-negative hash of its id
    (`pipelines.ranking.examples.item_tokens`); with item_id_buckets = 0 the hash column is not read."""

    offsets: torch.Tensor  # where each level's codes start in the shared embedding table

    def __init__(self, config: TwinConfig):
        super().__init__()
        self.levels, self.buckets = config.code_levels, config.item_id_buckets
        self.content = nn.Linear(config.item_dim, config.d_model)
        self.codes = nn.Embedding(config.code_levels * config.codebook_size, config.d_model)
        self.register_buffer("offsets", torch.arange(config.code_levels) * config.codebook_size, persistent=False)
        self.ids: nn.Embedding | None = None
        if self.buckets:
            self.ids = nn.Embedding(self.buckets, config.d_model)
            # small: a bucket no training item hashed to (a new item) stays close to "no ID signal"
            nn.init.normal_(self.ids.weight, std=0.01)

    def forward(self, vectors: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        h = self.content(vectors) + self.codes(tokens[..., : self.levels] + self.offsets).sum(-2)
        if self.ids is None:
            return h
        if tokens.shape[-1] <= self.levels:
            raise ValueError(f"the ranker embeds hashed item ids: tokens need {self.levels + 1} columns "
                             f"(codes, then the id hash), got {tokens.shape[-1]}")
        return h + self.ids(tokens[..., self.levels] % self.buckets)


def target_attention(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, bias: torch.Tensor,
    log_n: torch.Tensor, mask: torch.Tensor, top_k: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """query [B, H, d], keys/values [B, C, H, d], bias/log_n [B, C, H] or [B, C, 1], mask [B, C] ->
    (interest [B, H, d], alpha' [B, C, H]). Keeps the top_k clusters by mean alpha' over heads."""
    alpha = torch.einsum("bchd,bhd->bch", keys, query) / math.sqrt(query.shape[-1]) + bias + log_n
    alpha = alpha.masked_fill(~mask[..., None], -torch.inf)
    if alpha.shape[1] > top_k:  # retrieval stage: same scores, top-k clusters
        keep = alpha.mean(-1).topk(top_k, dim=1).indices
        alpha_kept = alpha.gather(1, keep[..., None].expand(-1, -1, alpha.shape[2]))
        values = values.gather(1, keep[..., None, None].expand(-1, -1, *values.shape[2:]))
    else:
        alpha_kept = alpha
    weights = torch.softmax(alpha_kept, dim=1).nan_to_num(0.0)  # a user with no clusters attends to nothing
    return torch.einsum("bch,bchd->bhd", weights, values), alpha


class TwinRanker(nn.Module):
    def __init__(self, config: TwinConfig):
        super().__init__()
        self.config = config
        inner = config.heads * config.head_dim
        self.items = ItemTower(config)
        self.key = nn.Linear(config.d_model, inner, bias=False)  # W_h
        self.value = nn.Linear(config.d_model, inner, bias=False)
        self.query = nn.Linear(config.d_model, inner, bias=False)  # W_q
        self.cross = nn.ModuleList(
            nn.Sequential(nn.Linear(1, config.cross_hidden), nn.Tanh(), nn.Linear(config.cross_hidden, 1))
            for _ in range(config.cross_features)
        )  # W_c: one small projection per cross feature
        self.beta = nn.Parameter(torch.zeros(config.cross_features, config.heads))
        self.interest = nn.Linear(inner, config.d_model)
        dims = [3 * config.d_model, *config.mlp_dims]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(config.dropout)]
        self.head = nn.Sequential(*layers, nn.Linear(dims[-1], 1))

    def item_keys(self, vectors: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(K_h W_h, values) of items [..., H, d]: depends on the item only."""
        h = self.items(vectors, tokens)
        shape = (*h.shape[:-1], self.config.heads, self.config.head_dim)
        return self.key(h).view(shape), self.value(h).view(shape)

    def cross_bias(self, cross: torch.Tensor) -> torch.Tensor:
        """[B, C, F] -> [B, C, H]: each feature to a scalar, weighted per head by beta."""
        scalars = torch.cat([g(cross[..., f : f + 1]) for f, g in enumerate(self.cross)], dim=-1)
        return scalars @ self.beta

    def forward(self, batch: ClusterBatch, item_vectors: torch.Tensor, item_tokens: torch.Tensor,
                precomputed: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Logits [B]. `precomputed`: (keys, values) [N, H, d] from `precompute_item_keys`."""
        mask = batch.cluster_items >= 0
        rows = batch.cluster_items.clamp(min=0)
        if precomputed is None and len(item_vectors) < rows.numel():
            # training: the catalog is smaller than the batch's cluster slots, so project every item once and
            # gather (same values, same gradients, far less work for long histories)
            all_keys, all_values = self.item_keys(item_vectors, item_tokens)
            keys, values = all_keys[rows], all_values[rows]
        elif precomputed is None:
            keys, values = self.item_keys(item_vectors[rows], item_tokens[rows])
        else:
            keys, values = precomputed[0][rows], precomputed[1][rows]
        target = self.items(item_vectors[batch.target_items], item_tokens[batch.target_items])
        query = self.query(target).view(-1, self.config.heads, self.config.head_dim)
        log_n = torch.log(batch.cluster_sizes.clamp(min=1).float())[..., None]
        if not self.config.use_log_n:
            log_n = torch.zeros_like(log_n)
        interest, _ = target_attention(query, keys, values, self.cross_bias(batch.cross), log_n, mask,
                                       self.config.top_k_clusters)
        interest = self.interest(interest.flatten(1))
        return self.head(torch.cat([target, interest, target * interest], dim=-1)).squeeze(-1)

    @torch.no_grad()
    def precompute_item_keys(self, item_vectors: torch.Tensor, item_tokens: torch.Tensor,
                             batch_size: int = 65_536) -> tuple[torch.Tensor, torch.Tensor]:
        """K_h W_h and values for every item, once (the offline half of TWIN's key split)."""
        parts = [self.item_keys(item_vectors[s : s + batch_size], item_tokens[s : s + batch_size])
                 for s in range(0, len(item_vectors), batch_size)]
        return torch.cat([k for k, _ in parts]), torch.cat([v for _, v in parts])
