import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models.config import TwinConfig
from models.twin import ClusterBatch, TwinRanker, target_attention

SMALL = TwinConfig(item_dim=8, codebook_size=8, d_model=16, heads=2, head_dim=4, mlp_dims=(16,), dropout=0.0,
                   cross_features=3, item_id_buckets=16)  # these tests feed 3 cross features per key


def naive_attention(query, keys, values, bias, log_n, mask, top_k):
    """Loops, one (user, head) at a time: the reference for the vectorised version."""
    b, c, h, d = keys.shape
    out = torch.zeros(b, h, d, dtype=torch.float64)
    for i in range(b):
        real = [j for j in range(c) if mask[i, j]]
        score = {j: [float(keys[i, j, k] @ query[i, k]) / math.sqrt(d) + float(bias[i, j, k]) + float(log_n[i, j, 0])
                     for k in range(h)] for j in real}
        kept = sorted(real, key=lambda j: -np.mean(score[j]))[:top_k] if len(real) > top_k else real
        for k in range(h):
            if not kept:
                continue
            z = np.array([score[j][k] for j in kept])
            w = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
            out[i, k] = sum(float(wj) * values[i, j, k].double() for wj, j in zip(w, kept, strict=True))
    return out


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 7), st.integers(1, 3), st.integers(1, 5), st.integers(1, 8),
       st.integers(0, 10_000))
def test_attention_matches_naive_reference(b, c, h, d, top_k, seed):
    g = torch.Generator().manual_seed(seed)
    q, keys, values = torch.randn(b, h, d, generator=g), torch.randn(b, c, h, d, generator=g), torch.randn(b, c, h, d, generator=g)
    bias = torch.randn(b, c, h, generator=g)
    log_n = torch.log(torch.randint(1, 50, (b, c, 1), generator=g).float())
    mask = torch.rand(b, c, generator=g) > 0.3
    got, _ = target_attention(q, keys, values, bias, log_n, mask, top_k)
    assert torch.allclose(got.double(), naive_attention(q, keys, values, bias, log_n, mask, top_k), atol=1e-5)


def _batch(rng, n_items=30, b=5, c=6):
    return ClusterBatch(
        target_items=torch.as_tensor(rng.integers(0, n_items, b)),
        cluster_items=torch.as_tensor(np.where(rng.random((b, c)) < 0.8, rng.integers(0, n_items, (b, c)), -1)),
        cluster_sizes=torch.as_tensor(rng.integers(1, 40, (b, c))),
        cross=torch.as_tensor(rng.random((b, c, 3)), dtype=torch.float32),
    )


def _items(rng, n_items=30):
    """(vectors, tokens): 4 semantic-ID codes, then an id hash far above the bucket count"""
    codes, hashes = rng.integers(0, 8, (n_items, 4)), rng.integers(0, 2**32, (n_items, 1))
    return (torch.as_tensor(rng.normal(size=(n_items, 8)), dtype=torch.float32),
            torch.as_tensor(np.c_[codes, hashes]))


def test_item_id_embedding_reads_the_hash_column_and_refuses_tokens_without_it():
    torch.manual_seed(0)
    rng = np.random.default_rng(4)
    vectors, tokens = _items(rng)
    model = TwinRanker(SMALL).eval()
    other_ids = tokens.clone()
    other_ids[:, -1] += 1  # same codes and content, other item ids
    batch = _batch(rng)
    assert not torch.allclose(model(batch, vectors, tokens), model(batch, vectors, other_ids))
    with pytest.raises(ValueError, match="5 columns"):
        model(batch, vectors, tokens[:, :4])
    without = TwinRanker(TwinConfig(**{**SMALL.__dict__, "item_id_buckets": 0})).eval()
    assert without.items.ids is None
    assert torch.allclose(without(batch, vectors, tokens), without(batch, vectors, other_ids))


@pytest.mark.parametrize("n_items", [10, 60])  # inline keys: projected per catalog item / per cluster slot
def test_precomputed_item_keys_give_the_same_scores(n_items):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = TwinRanker(SMALL).eval()
    vectors, codes = _items(rng, n_items)
    batch = _batch(rng, n_items)
    inline = model(batch, vectors, codes)
    ahead = model(batch, vectors, codes, precomputed=model.precompute_item_keys(vectors, codes))
    assert torch.allclose(inline, ahead, atol=1e-6)


def test_log_n_over_identical_members_equals_attention_over_the_raw_sequence():
    """A cluster of n identical events with +ln(n) weighs what the n raw events weigh."""
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    model = TwinRanker(SMALL).eval()
    vectors, codes = _items(rng)
    items, sizes = np.array([3, 7, 11]), np.array([4, 1, 9])
    cross = rng.random((3, 3)).astype(np.float32)
    clusters = ClusterBatch(torch.tensor([5]), torch.as_tensor(items)[None], torch.as_tensor(sizes)[None],
                            torch.as_tensor(cross)[None])
    raw = ClusterBatch(torch.tensor([5]), torch.as_tensor(np.repeat(items, sizes))[None],
                       torch.ones(1, sizes.sum(), dtype=torch.long), torch.as_tensor(np.repeat(cross, sizes, 0))[None])
    assert torch.allclose(model(clusters, vectors, codes), model(raw, vectors, codes), atol=1e-5)
    without = TwinRanker(TwinConfig(**{**SMALL.__dict__, "use_log_n": False}))
    without.load_state_dict(model.state_dict())
    assert not torch.allclose(without.eval()(clusters, vectors, codes), model(raw, vectors, codes), atol=1e-4)


def test_user_without_clusters_still_scores():
    model = TwinRanker(SMALL).eval()
    vectors, codes = _items(np.random.default_rng(2))
    empty = ClusterBatch(torch.tensor([1]), torch.full((1, 3), -1), torch.ones(1, 3, dtype=torch.long), torch.zeros(1, 3, 3))
    assert torch.isfinite(model(empty, vectors, codes)).all()


def test_debug_model_overfits_a_tiny_set():
    torch.manual_seed(0)
    rng = np.random.default_rng(3)
    vectors, codes = _items(rng)
    batch = _batch(rng, b=64)
    labels = torch.as_tensor(rng.integers(0, 2, 64), dtype=torch.float32)
    model = TwinRanker(SMALL)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(batch, vectors, codes), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    predicted = (model.eval()(batch, vectors, codes) > 0).float()
    assert (predicted == labels).float().mean() > 0.95


def test_training_stops_before_an_epoch_would_pass_the_budget():
    from models.config import TwinTrainConfig
    from models.twin_training import train_twin

    rng = np.random.default_rng(0)
    vectors, tokens = rng.normal(size=(20, 8)).astype(np.float32), rng.integers(0, 8, (20, 5))
    keys = [rng.integers(0, 20, 4) for _ in range(6)]
    args = (vectors, tokens, np.arange(6), rng.integers(0, 20, 6), np.r_[1.0, 0, 1, 0, 1, 0].astype(np.float32),
            keys, [np.ones(4, dtype=np.int64)] * 6, [np.zeros((4, 3), dtype=np.float32)] * 6)
    _, unbounded = train_twin(SMALL, TwinTrainConfig(epochs=3, batch_size=4), *args, progress=False)
    _, bounded = train_twin(SMALL, TwinTrainConfig(epochs=3, batch_size=4, max_minutes=1e-9), *args, progress=False)
    assert len(unbounded) == 3 and len(bounded) == 1  # one epoch always runs
