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
    # 600 epochs at 3e-4 rather than 300 at 1e-3: the slower, longer run keeps more of each item's content
    # neighbours under its first code (ml-100k, 2 seeds: 0.251 vs 0.241; benchmarks/bench_semantic_ids.py).
    epochs: int = 600
    batch_size: int = 1024
    # Small catalogs get smaller batches, so that an epoch is at least this many steps: with 1,682 items and
    # batches of 1,024 an epoch was 2 steps, and dead codes were re-seeded every second step.
    min_steps_per_epoch: int = 8
    lr: float = 3e-4
    weight_decay: float = 1e-4
    seed: int = 0
    kmeans_init: bool = True
    kmeans_init_samples: int = 65_536  # the first batch for the k-means init: big enough for 256 codes
    kmeans_iters: int = 25
    reseed_dead_codes: bool = True  # after every epoch, codes no item chose move onto live residuals
    checkpoint_every: int = 25  # epochs; 0 = never
    normalize_inputs: bool = True  # unit-length inputs: text and ALS vectors on one scale
    device: str | None = None  # None: cuda when present, else cpu


@dataclass(frozen=True)
class TigerConfig:
    """TIGER's encoder-decoder (defaults from the paper) over semantic-ID tokens."""

    levels: int = 4  # tokens per item: 3 RQ-VAE codes + the collision token
    codebook_size: int = 256
    user_buckets: int = 2_000  # user IDs hashed into this many tokens
    max_history: int = 20  # items the encoder reads
    d_model: int = 128
    heads: int = 6
    head_dim: int = 64
    mlp_dim: int = 1024
    encoder_layers: int = 4
    decoder_layers: int = 4
    dropout: float = 0.1
    # False: the paper's bidirectional encoder, one training target per encoder pass. True: each history item
    # attends to earlier ones only, so one pass over a window of W items trains all W next-item targets
    # (`Tiger.forward_windows`); serving reads the history the same way either way.
    causal_encoder: bool = False
    # LIGER's dense head (Yang et al., 2024): each history token also reads a projection of its item's content
    # vector (gold.item_embeddings), and the encoder's last state is trained against every item's
    # representation (content projection + mean code embedding) with a softmax over the catalog. Serving
    # re-scores the beam's items and the items no training event reached (cold start) by it.
    dense_head: bool = False
    item_vector_dim: int = 0  # set from gold.item_embeddings when the dense head is on
    dense_temperature: float = 0.07  # of the cosine between the sequence and each item
    # A learned embedding per item (its id hashed into this many rows; 0: none) beside the content vector,
    # in the tokens and the item representations: what content and codes alone cannot tell apart. Zero for
    # cold items (no training event), which are scored from content and codes only.
    dense_item_buckets: int = 0

    @classmethod
    def debug(cls, **overrides: int | float | bool) -> TigerConfig:
        """A model that trains in seconds on CPU: tests and the demo."""
        small = {"d_model": 64, "heads": 2, "head_dim": 32, "mlp_dim": 128,
                 "encoder_layers": 1, "decoder_layers": 1, "dropout": 0.0, "user_buckets": 64}
        return cls(**(small | overrides))  # type: ignore[arg-type]


@dataclass(frozen=True)
class TigerTrainConfig:
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 500  # then cosine decay to 0 at the last step
    seed: int = 0
    # Model selection (issue 17): validation Recall@10 on 1,000 users moved by +-0.01 between epochs on an
    # unseen category (its standard error is ~0.008), so the best epoch was picked on noise. Every
    # validation user by default (None); a sample is logged with its standard error.
    eval_users: int | None = None
    beam_width: int = 20
    # Early stopping: end the run after this many epochs without a better validation Recall@10 (None: never).
    patience: int | None = 3
    # Softened targets on each semantic-ID token; 0 = plain cross-entropy.
    label_smoothing: float = 0.0
    # An exponential moving average of the weights (Polyak averaging) is what validation scores, best.pt keeps
    # and serves; this is its decay per step (None: the raw weights). Off by default: at 0.999 it lifted
    # validation Recall@10 in the first epochs (ml-100k epoch 1: 0.089 vs 0.058; Beauty: 0.050 vs 0.045) but
    # not at the end of a run whose learning rate anneals to 0 (Beauty, 15 min: test 0.0580 either way), so
    # it pays for short runs (a warm-started night with a budget of an epoch or two), not for full ones.
    ema_decay: float | None = None
    max_minutes: float | None = None  # a wall-clock budget: stop after the epoch that passes it
    dense_loss_weight: float = 1.0  # the dense head's next-item loss beside the semantic-ID loss
    # The serving score of the dense head is dense logit + w * the beam's log-probability; w is chosen on
    # validation from these after training (0: the dense head alone orders the beam's items; 100: the beam's own
    # order, with the dense head only adding the cold items).
    beam_weights: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 100.0)
    device: str | None = None  # None: cuda when present, else cpu


@dataclass(frozen=True)
class TwinConfig:
    """TWIN-V2's cluster-aware target attention ranker."""

    item_dim: int = 384  # gold.item_embeddings vectors (set from the data)
    code_levels: int = 4  # semantic-ID tokens embedded as item-inherent features
    codebook_size: int = 256
    # Hashed item-ID embedding (TWIN's item-id feature), a table of this many rows; 0 = none. Hashing, not a
    # row per item, keeps a trained ranker valid when the catalog grows: item rows move, hashes do not.
    item_id_buckets: int = 32_768
    d_model: int = 64  # item-inherent representation
    heads: int = 4
    head_dim: int = 16
    cross_features: int = 4  # completion, rating, recency of each key; its short-term position (0: a cluster)
    # TWIN-V2's short-term sequence: the user's last R raw events are keys too (n = 1), next to the clusters.
    recent_events: int = 10
    cross_hidden: int = 4  # each cross feature -> scalar through its own 1 -> h -> 1 projection
    top_k_clusters: int = 100  # retrieval stage keeps these many clusters by alpha'
    use_log_n: bool = True  # TWIN-V2: alpha' = alpha + ln(n)
    mlp_dims: tuple[int, ...] = (128, 64)
    dropout: float = 0.1


@dataclass(frozen=True)
class TwinTrainConfig:
    # Training cuts (pipelines/ranking/cuts.py): each user's training events are cut at up to this many points;
    # the clusters of the events before a cut are the keys and the next `positives_per_cut` events positives.
    # One positive per user (the validation event alone) was too little signal to rerank TIGER's list.
    cuts_per_user: int = 8
    positives_per_cut: int = 3
    epochs: int = 8
    # wall-clock budget: no epoch starts that the epochs so far say would end past it (at least one runs)
    max_minutes: float | None = None
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    negatives: int = 8  # per positive, sampled from the catalog (+ TIGER's candidates when given)
    hard_negative_share: float = 0.5  # of the negatives, taken from TIGER's candidates when present
    seed: int = 0
    device: str | None = None


@dataclass(frozen=True)
class SASRecConfig:
    """SASRec, the sequential retriever beside TIGER (models/sasrec.py)."""

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
    eval_users: int | None = None  # validation users that select (models/selection.py); None: all
    seed: int = 0
    device: str | None = None
