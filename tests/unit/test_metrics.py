"""models/metrics.py against scikit-learn and hand-computed values."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from models.metrics import auc, gauc, per_user_gains, ranking_metrics, recall_at, standard_error


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


def test_unreachable_users_are_misses_in_every_mean():
    ranked = np.array([[3, 1], [0, 2]])
    targets = np.array([3, 2])  # both hit within 2
    assert ranking_metrics(ranked, targets, ks=(2,))["recall@2"] == 1.0
    over_all = ranking_metrics(ranked, targets, ks=(2,), unreachable=2)
    assert over_all["recall@2"] == 0.5
    assert over_all["ndcg@2"] == pytest.approx((1 + 1 / np.log2(3)) / 4)


def test_per_user_gains_and_standard_error():
    hits, gains = per_user_gains(np.array([[1, 2], [3, 4], [5, 6]]), np.array([2, 9, 5]), k=2)
    assert hits.tolist() == [1.0, 0.0, 1.0]
    assert gains == pytest.approx([1 / np.log2(3), 0.0, 1.0])
    assert standard_error(hits) == pytest.approx(np.std(hits, ddof=1) / np.sqrt(3))
    assert standard_error(np.array([1.0])) == 0.0


def test_evaluation_reports_every_user_and_the_users_with_an_id_side_by_side():
    from pipelines.evaluation.evaluate import method_metrics

    ranked = np.array([[4, 5], [6, 7], [1, 2]])
    metrics, per_user = method_metrics(ranked, np.array([4, 9, 2]), unreachable=1)  # a 4th user's target has no ID
    assert metrics["users"] == 4 and per_user["ndcg@10"].tolist()[3] == 0.0 and len(per_user["recall@10"]) == 4
    assert metrics["with_id/recall@5"] == pytest.approx(2 / 3)
    assert metrics["recall@5"] == pytest.approx(2 / 4)
    assert metrics["ndcg@10"] == pytest.approx((1 + 1 / np.log2(3)) / 4)
    assert metrics["ndcg@10_se"] == pytest.approx(np.std([1, 0, 1 / np.log2(3), 0], ddof=1) / 2)


def test_paired_differences_use_the_same_users():
    from pipelines.evaluation.evaluate import Evaluation

    a, b = np.array([1.0, 0.0, 1.0, 1.0]), np.array([0.0, 0.0, 1.0, 0.0])
    evaluation = Evaluation({"a": {"ndcg@10": 0.75}, "b": {"ndcg@10": 0.25}}, {}, 4,
                            {"a": {"ndcg@10": a}, "b": {"ndcg@10": b}})
    diff, se = evaluation.paired("a", "b")
    assert diff == pytest.approx(0.5) and se == pytest.approx(np.std(a - b, ddof=1) / 2)
    assert evaluation.best(exclude=("a",)) == "b"
