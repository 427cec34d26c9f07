"""The fast beam search returns what the reference returns: same items, same scores, on random models and tries."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.beam_search import SemanticIdTrie, beam_search, exclusion_mask
from models.beam_search_fast import exclusion_mask_fast, fast_beam_search
from models.config import TigerConfig
from models.tiger import Tiger, encoder_tokens


def _random_case(seed: int, codebook: int, levels: int, n_items: int, users: int, dtype=torch.float64):
    rng = np.random.default_rng(seed)
    codes = np.unique(rng.integers(0, codebook, size=(n_items * 3, levels)), axis=0)
    codes = codes[rng.permutation(len(codes))[:n_items]]
    config = TigerConfig.debug(codebook_size=codebook, levels=levels, max_history=6, encoder_layers=2,
                               decoder_layers=2, user_buckets=8)
    torch.manual_seed(seed)
    model = Tiger(config).to(dtype).eval()
    histories = rng.integers(-1, len(codes), size=(users, config.max_history))
    histories[:, -1] = rng.integers(0, len(codes), size=users)  # everyone has a latest item
    tokens = encoder_tokens(config, torch.as_tensor(codes), torch.as_tensor(histories),
                            torch.as_tensor(rng.integers(0, 8, users)))
    return model, SemanticIdTrie(codes, codebook), tokens, histories, len(codes)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), codebook=st.integers(3, 8), levels=st.integers(2, 4),
       n_items=st.integers(5, 150), top_k=st.integers(1, 100), extra_width=st.integers(0, 20),
       exclude=st.booleans())
def test_fast_path_matches_the_reference(seed, codebook, levels, n_items, top_k, extra_width, exclude):
    model, trie, tokens, histories, n = _random_case(seed, codebook, levels, n_items, users=5)
    mask = exclusion_mask(torch.as_tensor(histories), n, tokens.device) if exclude else None
    reference = beam_search(model, tokens, trie, top_k, top_k + extra_width, exclude=mask)
    fast = fast_beam_search(model, tokens, trie, top_k, top_k + extra_width, exclude=mask)
    assert torch.equal(fast.items, reference.items)
    finite = torch.isfinite(reference.scores)
    assert torch.equal(torch.isfinite(fast.scores), finite)
    assert torch.allclose(fast.scores[finite], reference.scores[finite], atol=1e-5, rtol=0)


@pytest.mark.parametrize("top_k", [1, 10, 100])
def test_fast_path_in_float32_gives_the_reference_scores(top_k):
    model, trie, tokens, histories, n = _random_case(7, 8, 4, 300, users=16, dtype=torch.float32)
    mask = exclusion_mask(torch.as_tensor(histories), n, tokens.device)
    reference = beam_search(model, tokens, trie, top_k, exclude=mask)
    fast = fast_beam_search(model, tokens, trie, top_k, exclude=mask)
    assert torch.allclose(fast.scores, reference.scores, atol=1e-4, rtol=0)
    # items agree wherever the reference's neighbouring scores are not a float-rounding tie
    gaps = reference.scores.diff(dim=1).abs()
    clear = torch.cat([gaps[:, :1], torch.minimum(gaps[:, 1:], gaps[:, :-1]), gaps[:, -1:]], dim=1) > 1e-4 \
        if top_k > 2 else torch.ones_like(reference.scores, dtype=torch.bool)
    assert torch.equal(fast.items[clear], reference.items[clear])


def test_excluded_items_never_come_back_and_short_catalogs_pad_with_minus_one():
    model, trie, tokens, histories, n = _random_case(3, 4, 3, 12, users=4)
    mask = exclusion_mask(torch.as_tensor(histories), n, tokens.device)
    result = fast_beam_search(model, tokens, trie, top_k=20, exclude=mask)
    for row, items in enumerate(result.items.tolist()):
        kept = [i for i in items if i >= 0]
        assert len(kept) == n - int(mask[row].sum()) and not set(kept) & set(np.flatnonzero(mask[row].numpy()))
        assert items[len(kept):] == [-1] * (20 - len(kept))


@settings(max_examples=30, deadline=None)
@given(rows=st.lists(st.lists(st.integers(0, 29), max_size=8), min_size=1, max_size=6))
def test_exclusion_mask_fast_equals_the_loop(rows):
    as_arrays = [np.asarray(r, dtype=np.int64) for r in rows]
    expected = exclusion_mask(as_arrays, 30, torch.device("cpu"))
    assert torch.equal(exclusion_mask_fast(as_arrays, 30, torch.device("cpu")), expected)
    width = max(1, max(len(r) for r in rows))
    padded = np.full((len(rows), width), -1)
    for i, r in enumerate(rows):
        padded[i, width - len(r):] = r
    assert torch.equal(exclusion_mask_fast(padded, 30, torch.device("cpu")), expected)
