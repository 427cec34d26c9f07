"""models/metrics.py against scikit-learn and hand-computed values."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from models.metrics import auc, gauc, ranking_metrics, recall_at


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_scikit_learn_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 200).astype(np.float32)
    scores = np.round(rng.normal(size=200) + labels, 1)  # rounding makes many ties
    assert auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_auc_by_hand():
    assert auc(np.array([1, 0, 0]), np.array([0.9, 0.1, 0.5])) == 1.0
    assert auc(np.array([1, 0, 0]), np.array([0.3, 0.1, 0.5])) == 0.5
    assert auc(np.array([1, 0]), np.array([0.2, 0.2])) == 0.5  # a tie counts half
    assert np.isnan(auc(np.array([1, 1]), np.array([0.2, 0.3])))


def test_gauc_weights_each_users_auc_by_their_pairs_and_skips_one_class_users():
    users = np.array(["a", "a", "a", "b", "b", "c"], dtype=object)
    labels = np.array([1, 0, 0, 1, 0, 1])
    scores = np.array([0.9, 0.1, 0.5, 0.2, 0.8, 0.4])  # a: AUC 1 over 3 pairs, b: AUC 0 over 2, c: one class
    assert gauc(users, labels, scores) == pytest.approx((1.0 * 3 + 0.0 * 2) / 5)


def test_ranking_metrics_and_recall_at_by_hand():
    ranked = np.array([[3, 1, 2], [0, 1, 2], [5, 6, 7], [2, -1, -1]])
    targets = np.array([3, 2, 9, 2])
    m = ranking_metrics(ranked, targets, ks=(1, 3))
    assert m == {"recall@1": 0.5, "ndcg@1": 0.5, "recall@3": 0.75,
                 "ndcg@3": pytest.approx((1 + 1 / np.log2(4) + 1) / 4)}
    assert recall_at(ranked, targets) == 0.75
