"""The union of retrievers' lists and the gated fusion that orders it."""

import numpy as np

from pipelines.ranking.fusion import Fusion, choose_fusion, rank_feature
from pipelines.ranking.union import union_of
from pipelines.retrieval.retriever import Retrieved


def _found(items):
    items = np.asarray(items, dtype=np.int64)
    return Retrieved(items, np.where(items >= 0, -np.arange(items.shape[1], dtype=float)[None, :], -np.inf))


def test_union_dedupes_round_robin_and_records_every_rank():
    union = union_of({"a": _found([[5, 6, 7], [1, -1, -1]]), "b": _found([[6, 8, 5], [2, 1, 3]])})
    assert union.items[0].tolist() == [5, 6, 8, 7]  # a1, b1 (6), b2 = 8 after a2 = 6 was taken, a3
    assert union.ranks[0].tolist() == [[1, 3], [2, 1], [0, 2], [3, 0]]
    assert union.items[1].tolist() == [1, 2, 3, -1]
    assert union.ranks[1, 0].tolist() == [1, 2]  # item 1: a's 1st, b's 2nd
    assert np.isnan(union.scores[0, 2, 0]) and union.scores[0, 2, 1] == -1.0
    assert union.of_retriever("b")[0].tolist() == [6, 8, 5, -1]


def test_a_single_retrievers_fusion_is_its_own_order():
    union = union_of({"a": _found([[5, 6, 7]]), "b": _found([[7, 8, 9]])})
    assert Fusion.single(("a", "b"), "b", 3).ranked(union, None)[0].tolist()[:3] == [7, 8, 9]
    assert rank_feature(np.array([0, 1, 3])).tolist() == [0.0, 1.0, 0.5]


def test_fusion_learns_to_trust_the_ranker_when_the_logit_knows_and_gates_when_it_does_not():
    rng = np.random.default_rng(0)
    n, k = 400, 10
    targets = rng.integers(0, 1000, n)
    a = rng.integers(1000, 2000, (n, k))
    b = rng.integers(2000, 3000, (n, k))
    b[:, 7] = targets  # b always finds the target, at rank 8
    union = union_of({"a": _found(a), "b": _found(b)})
    users = np.array([f"u{i}" for i in range(n)], dtype=object)
    knowing = np.where(union.items == targets[:, None], 5.0, 0.0)  # a logit that spots the target
    fusion = choose_fusion(union, knowing, targets, users, depth=k)
    assert fusion.ranker_weight > 0 and fusion.gate["passed"] == 1.0
    assert (fusion.ranked(union, knowing)[:, 0] == targets).all()
    b[:, 7], b[:, 0] = b[:, 0].copy(), targets  # now b's own order is already the best there is
    union = union_of({"a": _found(a), "b": _found(b)})
    noise = rng.normal(size=union.items.shape)
    fallback = choose_fusion(union, noise, targets, users, depth=k)
    assert fallback.retriever_weights == (0.0, 1.0) and fallback.ranker_weight == 0.0  # b alone: noise gated out
