"""TIGER's dense head (LIGER-style): its loss and scoring on a tiny model, identical beams without it, and
cold items (no training event) reachable by the trie and by the re-scoring."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from models.beam_search import BeamResult, SemanticIdTrie
from models.config import TigerConfig, TigerTrainConfig
from models.examples import Examples
from models.tiger import Tiger, encoder_tokens, item_hashes, sequence_states
from models.tiger_training import (
    DenseInputs,
    recommend,
    recommend_by_weight,
    rescore_with_dense_head,
    train_tiger,
)
from tests.unit.test_tiger import _toy_sequences, catalog

VECTOR_DIM = 8


def dense_config(causal: bool, buckets: int = 0) -> TigerConfig:
    return TigerConfig.debug(codebook_size=4, max_history=5, dense_head=True, item_vector_dim=VECTOR_DIM,
                             causal_encoder=causal, dense_item_buckets=buckets)


def vectors(n: int = 20, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, VECTOR_DIM)).astype(np.float32)


def test_a_dense_head_needs_the_vectors_width():
    with pytest.raises(ValueError, match="item_vector_dim"):
        Tiger(TigerConfig.debug(dense_head=True))
    with pytest.raises(ValueError, match="DenseInputs"):
        train_tiger(catalog(n=20), _toy_sequences(), _toy_sequences(), dense_config(False),
                    TigerTrainConfig(epochs=1), progress=False)


@pytest.mark.parametrize(("causal", "buckets"), [(False, 0), (True, 0), (True, 64)])
def test_the_dense_head_alone_ranks_the_known_next_item_first(causal, buckets):
    codes, data = catalog(n=20), _toy_sequences()
    dense = DenseInputs(vectors(), data.items_never_seen(20), item_hashes(np.arange(20)))
    train = TigerTrainConfig(epochs=40, batch_size=32, lr=3e-3, warmup_steps=10, beam_width=10, patience=None)
    model, state = train_tiger(codes, data, data, dense_config(causal, buckets), train, progress=False, dense=dense)
    assert state.beam_weight in train.beam_weights
    assert {"beam_weight"} <= set(state.history[-1])
    latest = data.take(np.flatnonzero(np.r_[data.users[1:] != data.users[:-1], True]))
    # the dense logits over the whole catalog, no beam: the trained next item comes first
    with torch.no_grad():
        histories = torch.as_tensor(latest.histories)
        tokens = encoder_tokens(model.config, torch.as_tensor(codes), histories, torch.zeros(len(latest), dtype=torch.long),
                                trim_padding=False)
        features = model.item_features(torch.as_tensor(dense.item_vectors), torch.as_tensor(dense.item_hashes))
        memory, _ = model.encode(tokens, model.history_content(features, histories))
        items = model.item_representations(features, torch.as_tensor(codes))
        logits = model.dense_logits(sequence_states(memory, model.config.levels, False), items)
    assert (logits.argmax(1).numpy() == latest.targets).mean() > 0.9
    # and served: the beam's items ordered by the dense head alone (weight 0)
    top1 = recommend(model, torch.as_tensor(codes), SemanticIdTrie(codes, 4), latest, top_k=1, beam_width=10,
                     exclude_history=False, dense=dense, beam_weight=0.0).items[:, 0].numpy()
    assert (top1 == latest.targets).mean() > 0.9


def test_without_a_dense_head_the_dense_inputs_change_nothing():
    torch.manual_seed(0)
    codes, data = catalog(n=20), _toy_sequences()
    model = Tiger(TigerConfig.debug(codebook_size=4, max_history=5)).eval()
    trie = SemanticIdTrie(codes, 4)
    plain = recommend(model, torch.as_tensor(codes), trie, data, top_k=5, beam_width=8)
    given = recommend_by_weight(model, torch.as_tensor(codes), trie, data, top_k=5, beam_width=8,
                                dense=DenseInputs(vectors(), np.arange(3)), beam_weights=(0.0, 1.0))
    for result in given.values():
        assert torch.equal(result.items, plain.items) and torch.equal(result.scores, plain.scores)


def test_with_a_dense_head_the_fast_and_reference_searches_agree():
    torch.manual_seed(0)
    codes, data = catalog(n=20), _toy_sequences()
    model = Tiger(dense_config(True)).eval()
    dense = DenseInputs(vectors(), np.array([2, 7]))
    kwargs = dict(top_k=6, beam_width=8, dense=dense, beam_weight=0.5)
    fast = recommend(model, torch.as_tensor(codes), SemanticIdTrie(codes, 4), data, fast=True, **kwargs)
    reference = recommend(model, torch.as_tensor(codes), SemanticIdTrie(codes, 4), data, fast=False, **kwargs)
    assert torch.equal(fast.items, reference.items)
    assert torch.allclose(fast.scores, reference.scores, atol=1e-4)


def test_cold_items_are_in_the_trie_and_the_rescoring_serves_them_unless_seen():
    torch.manual_seed(0)
    codes = catalog(n=20)
    data = _toy_sequences(codes_n=19)  # item 19 never occurs: a cold item with a semantic ID
    cold = data.items_never_seen(20)
    assert cold.tolist() == [19]
    trie = SemanticIdTrie(codes, 4)
    assert bool(trie.items == 20)  # every item with an ID is a path of the trie, trained on or not
    model = Tiger(dense_config(False)).eval()
    states = torch.randn(2, model.config.d_model)
    with torch.no_grad():
        query = model.dense_queries(states)
    items = F.normalize(torch.randn(20, model.config.d_model), dim=-1)
    items[19] = query[0]  # the cold item is user 0's nearest item by far
    beam = BeamResult(torch.tensor([[0, 1, 2], [3, 4, 5]]), torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -2.0, -3.0]]))
    seen = torch.zeros(2, 20, dtype=torch.bool)
    seen[1, 19] = True  # user 1 already had it
    ranked = rescore_with_dense_head(model, states, items, beam, torch.tensor(cold), seen, top_k=4, beam_weight=0.0)
    assert ranked.items[0, 0] == 19
    assert 19 not in ranked.items[1].tolist()
    assert set(ranked.items[1].tolist()) == {3, 4, 5, -1}  # nothing else to serve: padded, not invented
    # a large beam weight keeps the beam's order; the cold item counts the lowest beam score
    by_beam = rescore_with_dense_head(model, states, items, beam, torch.tensor(cold), seen, top_k=3,
                                      beam_weight=100.0)
    assert by_beam.items[1].tolist() == [3, 4, 5]


def test_items_never_seen_reads_histories_and_targets():
    examples = Examples(np.array(["a", "b"], dtype=object), np.array([[-1, 0], [1, 2]]), np.array([3, 0]))
    assert examples.items_never_seen(6).tolist() == [4, 5]


def test_a_cold_items_id_embedding_is_never_used():
    model = Tiger(dense_config(False, buckets=8))
    with torch.no_grad():
        model.item_ids.weight.normal_()  # as if trained
    content = torch.randn(5, VECTOR_DIM)
    warm = torch.tensor([True, True, False, True, False])
    features = model.item_features(content, torch.arange(5), warm)
    content_only = model.item_features(content)
    assert torch.allclose(features[~warm], content_only[~warm])
    assert not torch.allclose(features[warm], content_only[warm])


def test_a_new_dense_item_embedding_starts_at_zero():
    model = Tiger(dense_config(False, buckets=8))
    assert not model.item_ids.weight.any()


def test_a_cold_item_inherits_the_beam_score_of_a_beam_item_in_its_content_cluster():
    model = Tiger(dense_config(False)).eval()
    codes = torch.tensor([[0, 1, 2, 0], [0, 1, 2, 1], [3, 3, 3, 0], [1, 1, 1, 0]])  # 1 shares 0's first 3 codes
    states = torch.randn(1, model.config.d_model)
    items = torch.zeros(4, model.config.d_model)  # equal dense scores: the beam score decides
    beam = BeamResult(torch.tensor([[2, 0]]), torch.tensor([[-1.0, -2.0]]))
    ranked = rescore_with_dense_head(model, states, items, beam, torch.tensor([1, 3]), None, top_k=4,
                                     beam_weight=1.0, item_codes=codes)
    # cold 1 inherits item 0's -2.0 (ties broken by position); cold 3 reached no cluster: the floor, -2.0 too
    assert ranked.items[0, 0] == 2 and set(ranked.items[0, 1:].tolist()) == {0, 1, 3}
    beam = BeamResult(torch.tensor([[2, 0]]), torch.tensor([[-1.0, -0.5]]))
    ranked = rescore_with_dense_head(model, states, items, beam, torch.tensor([1, 3]), None, top_k=4,
                                     beam_weight=1.0, item_codes=codes)
    assert ranked.items[0, :2].tolist() in ([0, 1], [1, 0]) and ranked.items[0, 3] == 3
