"""TIGER: an encoder-decoder Transformer that reads a history of semantic IDs and writes the next one.

Tokens: PAD, BOS, then `levels x codebook_size` code tokens (level l, code c ->
2 + l*K + c), then one token per user bucket. The encoder reads
[user, item_1 codes, ..., item_n codes] with the history right-aligned (the
most recent item always sits at the same positions); the decoder starts
from BOS and emits one code per level; position t of the decoder only
scores level t's K codes. T5-style attention: 6 heads of 64 on a 128-d
model (the inner width need not equal d_model). Torch only.

The paper's encoder is bidirectional, so each training prefix needs its own
encoder pass. With `causal_encoder`, an item's codes attend to the user token
and to earlier items only; a window of W items then trains its W next-item
targets in one pass (`forward_windows`), each decoded against the memory of
its own prefix, and gives the same logits as W separate passes would.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.config import TigerConfig

PAD, BOS = 0, 1
FIRST_CODE_TOKEN = 2


def code_token(config: TigerConfig, level: int | torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    return FIRST_CODE_TOKEN + level * config.codebook_size + code


def user_bucket(user_id: str, buckets: int) -> int:
    """Stable across processes and runs (Python's hash() is salted)."""
    return zlib.crc32(user_id.encode()) % buckets


def user_buckets(users: np.ndarray, buckets: int) -> np.ndarray:
    """Each user id's hashed token bucket, [E] int64."""
    return np.array([user_bucket(str(u), buckets) for u in users], dtype=np.int64)


def item_hashes(item_ids: np.ndarray) -> np.ndarray:
    """Each item id's stable hash, [N] int64 (the dense head takes it modulo its bucket count)."""
    return np.array([zlib.crc32(str(i).encode()) for i in item_ids], dtype=np.int64)


def vocab_size(config: TigerConfig) -> int:
    return FIRST_CODE_TOKEN + config.levels * config.codebook_size + config.user_buckets


class Attention(nn.Module):
    def __init__(self, config: TigerConfig):
        super().__init__()
        inner = config.heads * config.head_dim
        self.heads, self.head_dim, self.dropout = config.heads, config.head_dim, config.dropout
        self.query = nn.Linear(config.d_model, inner, bias=False)
        self.key_value = nn.Linear(config.d_model, 2 * inner, bias=False)
        self.out = nn.Linear(inner, config.d_model, bias=False)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None,
                causal: bool = False) -> torch.Tensor:
        """`mask`: bool, broadcastable to [B, heads, len(x), len(context)], True = may attend."""
        b, tq, _ = x.shape
        tk = context.shape[1]
        q = self.query(x).view(b, tq, self.heads, self.head_dim).transpose(1, 2)
        k, v = self.key_value(context).view(b, tk, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(out.transpose(1, 2).reshape(b, tq, -1))


class FeedForward(nn.Sequential):
    def __init__(self, config: TigerConfig):
        super().__init__(nn.Linear(config.d_model, config.mlp_dim), nn.ReLU(), nn.Dropout(config.dropout),
                         nn.Linear(config.mlp_dim, config.d_model))


class EncoderLayer(nn.Module):
    def __init__(self, config: TigerConfig):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(config.d_model), nn.LayerNorm(config.d_model)
        self.attention, self.feed_forward = Attention(config), FeedForward(config)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.drop(self.attention(h, h, mask))
        return x + self.drop(self.feed_forward(self.norm2(x)))


class DecoderLayer(nn.Module):
    def __init__(self, config: TigerConfig):
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(config.d_model) for _ in range(3))
        self.self_attention, self.cross_attention = Attention(config), Attention(config)
        self.feed_forward = FeedForward(config)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor,
                self_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`self_mask` None: causal over x; else who in x sees whom (several targets side by side)."""
        h = self.norms[0](x)
        x = x + self.drop(self.self_attention(h, h, self_mask, causal=self_mask is None))
        x = x + self.drop(self.cross_attention(self.norms[1](x), memory, memory_mask))
        return x + self.drop(self.feed_forward(self.norms[2](x)))


class Tiger(nn.Module):
    def __init__(self, config: TigerConfig):
        super().__init__()
        self.config = config
        d = config.d_model
        self.embed = nn.Embedding(vocab_size(config), d, padding_idx=PAD)
        self.encoder_positions = nn.Embedding(1 + config.max_history * config.levels, d)
        self.decoder_positions = nn.Embedding(config.levels, d)
        self.encoder = nn.ModuleList(EncoderLayer(config) for _ in range(config.encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(config) for _ in range(config.decoder_layers))
        self.encoder_norm, self.decoder_norm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.head = nn.Linear(d, config.levels * config.codebook_size)
        self.drop = nn.Dropout(config.dropout)
        if config.dense_head:
            if config.item_vector_dim <= 0:
                raise ValueError("TigerConfig(dense_head=True) needs item_vector_dim, the item vectors' width")
            self.item_projection = nn.Linear(config.item_vector_dim, d)  # content -> each token, and the items
            self.dense_query = nn.Linear(d, d)  # the encoder's last state -> the sequence's dense query
            if config.dense_item_buckets:
                self.item_ids = nn.Embedding(config.dense_item_buckets, d)
                nn.init.zeros_(self.item_ids.weight)  # an item starts from its content and codes alone

    def item_features(self, item_vectors: torch.Tensor, item_hashes: torch.Tensor | None = None,
                      warm: torch.Tensor | None = None) -> torch.Tensor:
        """Dense head: [N, D] content vectors -> [N, d] item features: the projected (unit) content vector,
        plus the item's hashed id embedding (`item_hashes` [N] int64) where `warm` [N] (items some training
        event holds; None: all)."""
        features = self.item_projection(F.normalize(item_vectors, dim=-1))
        if self.config.dense_item_buckets and item_hashes is not None:
            ids = self.item_ids(item_hashes % self.config.dense_item_buckets)
            features = features + (ids if warm is None else ids * warm[:, None])
        return features

    def history_content(self, features: torch.Tensor, histories: torch.Tensor) -> torch.Tensor:
        """Dense head: item features [N, d] (`item_features`), histories [B, H] (-1 = padding) -> [B, 1 + H*L, d],
        each item's features on its L code tokens (zeros on the user token and on padding); the same
        histories `encoder_tokens` read, so the two line up."""
        real = histories >= 0
        per_item = features[histories.clamp(min=0)] * real[..., None]  # [B, H, d]
        return F.pad(per_item.repeat_interleave(self.config.levels, dim=1), (0, 0, 1, 0))

    def item_representations(self, features: torch.Tensor, item_codes: torch.Tensor) -> torch.Tensor:
        """Dense head: item features [N, d] and codes [N, L] -> [N, d] unit rows: the features plus the mean
        embedding of the item's code tokens. An item no event reached still has both (cold start)."""
        levels = torch.arange(self.config.levels, device=item_codes.device)
        codes = self.embed(code_token(self.config, levels, item_codes)).mean(1)  # [N, d]
        return F.normalize(features + codes, dim=-1)

    def dense_logits(self, states: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Encoder states [..., d] and unit item rows [N, d] -> [..., N] cosines over the temperature."""
        return self.dense_queries(states) @ items.T / self.config.dense_temperature

    def dense_queries(self, states: torch.Tensor) -> torch.Tensor:
        """Encoder states [..., d] -> the dense head's unit query vectors [..., d]."""
        return F.normalize(self.dense_query(states), dim=-1)

    def encode(self, tokens: torch.Tensor, content: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens [B, S] -> memory [B, S, d] and the mask of real (non-PAD) positions; `content` [B, S, d]
        (dense head, `history_content`) is added to the token embeddings."""
        keep = tokens != PAD
        mask = keep[:, None, None, :]
        if self.config.causal_encoder:
            # counted from the first real token, so an item's state is the same whether it ends the history
            # (serving) or sits inside a training window; each item sees the user, itself and earlier items
            positions = (keep.cumsum(1) - 1).clamp(min=0)
            mask = mask & _item_causal_mask(tokens.shape[1], self.config.levels, tokens.device)
        else:
            # counted from the end: the most recent item has the same positions whatever the history length;
            # the user token keeps a full history's position, or its position (and every score of the user)
            # would follow the longest history that shares the batch
            positions = torch.arange(tokens.shape[1] - 1, -1, -1, device=tokens.device)
            positions[0] = self.config.max_history * self.config.levels
        x = self.embed(tokens) + self.encoder_positions(positions)
        x = self.drop(x if content is None else x + content)
        for layer in self.encoder:
            x = layer(x, mask)
        return self.encoder_norm(x), keep

    def decode(self, memory: torch.Tensor, keep: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """decoder input [B, T] (BOS + the first T-1 codes) -> logits [B, T, K]: position t scores level t."""
        t = tokens.shape[1]
        positions = torch.arange(t, device=tokens.device)
        x = self.drop(self.embed(tokens) + self.decoder_positions(positions))
        for layer in self.decoder:
            x = layer(x, memory, keep[:, None, None, :])
        logits = self.head(self.decoder_norm(x)).view(*tokens.shape, self.config.levels, self.config.codebook_size)
        return logits[:, positions, positions]  # [B, T, K]: each position's own level

    def forward_windows(self, encoder_tokens: torch.Tensor, target_codes: torch.Tensor,
                        content: torch.Tensor | None = None) -> torch.Tensor:
        """Causal encoder only, teacher forcing on every target of a window at once: encoder_tokens
        [B, 1 + W*L] hold W items; target_codes [B, W, L] the item after each of them -> logits [B, W, L, K].
        Target w reads the memory of the user and items 0..w only, so its logits equal those of `forward`
        on that prefix: one encoder pass trains W targets instead of one."""
        if not self.config.causal_encoder:
            raise ValueError("forward_windows needs TigerConfig(causal_encoder=True): a bidirectional encoder "
                             "lets earlier targets see later items")
        memory, keep = self.encode(encoder_tokens, content)
        return self.decode_windows(memory, keep, target_codes)

    def decode_windows(self, memory: torch.Tensor, keep: torch.Tensor, target_codes: torch.Tensor) -> torch.Tensor:
        """`forward_windows` after the encoder: memory [B, 1 + W*L, d] -> logits [B, W, L, K]."""
        b, w, levels = target_codes.shape
        device = target_codes.device
        tokens = self.decoder_input(target_codes.reshape(b * w, levels)[:, :-1]).view(b, w * levels)
        level_of = torch.arange(levels, device=device).repeat(w)
        target_of = torch.arange(w, device=device).repeat_interleave(levels)  # [W*L]
        same_target = target_of[:, None] == target_of[None, :]
        self_mask = same_target & (level_of[None, :] <= level_of[:, None])  # causal within each target
        slot = _item_slot(memory.shape[1], levels, device)  # [S]: the user token is slot -1
        memory_mask = keep[:, None, None, :] & (slot[None, :] <= target_of[:, None])[None, None]
        x = self.drop(self.embed(tokens) + self.decoder_positions(level_of))
        for layer in self.decoder:
            x = layer(x, memory, memory_mask, self_mask)
        logits = self.head(self.decoder_norm(x)).view(b, w, levels, levels, self.config.codebook_size)
        own = torch.arange(levels, device=device)
        return logits[:, :, own, own]  # [B, W, L, K]

    def forward(self, encoder_tokens: torch.Tensor, target_codes: torch.Tensor,
                content: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher forcing: target codes [B, levels] -> logits [B, levels, K]."""
        memory, keep = self.encode(encoder_tokens, content)
        return self.decode(memory, keep, self.decoder_input(target_codes[:, :-1]))

    def decoder_input(self, codes: torch.Tensor) -> torch.Tensor:
        """BOS followed by the code tokens of `codes` [B, t] (t < levels)."""
        levels = torch.arange(codes.shape[1], device=codes.device)
        bos = torch.full((codes.shape[0], 1), BOS, dtype=torch.long, device=codes.device)
        return torch.cat([bos, code_token(self.config, levels, codes)], dim=1)


def _item_slot(tokens: int, levels: int, device: torch.device) -> torch.Tensor:
    """Which history item each encoder position holds: [user, item 0's L codes, item 1's, ...] -> -1, 0, 0, ..."""
    return torch.div(torch.arange(tokens, device=device) - 1, levels, rounding_mode="floor")


def _item_causal_mask(tokens: int, levels: int, device: torch.device) -> torch.Tensor:
    """[S, S] bool: a position sees the user token, the codes of its own item and of every earlier item (the
    user token sees itself only, or it would carry later items to earlier targets)."""
    slot = _item_slot(tokens, levels, device)
    return slot[None, :] <= slot[:, None]


def encoder_tokens(
    config: TigerConfig, item_codes: torch.Tensor, histories: torch.Tensor, users: torch.Tensor,
    trim_padding: bool = True,
) -> torch.Tensor:
    """histories [B, H] of item indices, right-aligned, -1 = padding; users [B] buckets -> tokens [B, 1 + H*L].

    With `trim_padding`, leading columns that are padding for the whole batch are cut (less work on short
    histories, at the price of a host sync and a shape per batch; GPU training keeps shapes fixed instead).
    """
    if trim_padding:
        histories = trim_leading_padding(histories)
    real = histories >= 0
    codes = item_codes[histories.clamp(min=0)]  # [B, H, L]
    levels = torch.arange(config.levels, device=codes.device)
    tokens = torch.where(real[..., None], code_token(config, levels, codes), torch.full_like(codes, PAD))
    user = FIRST_CODE_TOKEN + config.levels * config.codebook_size + users
    return torch.cat([user[:, None], tokens.flatten(1)], dim=1)


def trim_leading_padding(histories: torch.Tensor) -> torch.Tensor:
    """histories [B, H] without the leading columns that are padding (-1) in every row (a host sync)."""
    real = (histories >= 0).any(0)
    return histories[:, int(real.nonzero()[0]):] if real.any() else histories


def sequence_states(memory: torch.Tensor, levels: int, windows: bool) -> torch.Tensor:
    """The encoder states the dense head reads: the last code of the last item [B, d] (histories are
    right-aligned), or with `windows` the last code of each item w of a window, [B, W, d] (item w's state
    sees items 0..w only with a causal encoder)."""
    return memory[:, levels::levels] if windows else memory[:, -1]


def count_parameters(model: nn.Module) -> int:
    return int(sum(np.prod(p.shape) for p in model.parameters()))
