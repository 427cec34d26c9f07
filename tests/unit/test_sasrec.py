"""The SASRec baseline: its training sequences, its exclusions, and that it learns a sequential pattern."""

import numpy as np
import pytest
import torch

from models.config import SASRecConfig
from models.examples import Examples
from models.metrics import ranking_metrics
from models.sasrec import SASRec, next_item_sequences, sasrec_top_k, train_sasrec
from pipelines.retrieval.sequences import right_aligned

WIDTH = 6


def _prefixes(sequences: dict[str, list[int]], width: int = WIDTH) -> Examples:
    users, histories, targets = [], [], []
    for user, items in sequences.items():
        for t in range(1, len(items)):
            users.append(user)
            histories.append(np.array(items[max(0, t - width):t]))
            targets.append(items[t])
    return Examples(np.array(users, dtype=object), right_aligned(histories, width), np.array(targets))


def test_next_item_sequences_take_each_users_longest_prefix():
    inputs, nexts = next_item_sequences(_prefixes({"a": [1, 2, 3], "b": [4, 5, 6, 7, 8, 9, 10, 11]}), WIDTH)
    assert inputs.tolist() == [[-1, -1, -1, -1, 1, 2], [5, 6, 7, 8, 9, 10]]
    assert nexts.tolist() == [[-1, -1, -1, 1, 2, 3], [6, 7, 8, 9, 10, 11]]
    with pytest.raises(ValueError, match="histories of 10"):
        next_item_sequences(_prefixes({"a": [1, 2, 3]}), 10)


def test_top_k_never_returns_the_seen_set():
    torch.manual_seed(0)
    model = SASRec(12, SASRecConfig(max_length=WIDTH), dropout=0.0)
    examples = _prefixes({"a": [0, 1, 2, 3, 4, 5, 6]})
    seen = [np.r_[h[h >= 0], [10, 11]] for h in examples.histories]  # also items from before the window
    ranked, scores = sasrec_top_k(model, examples, 5, seen)
    for items, excluded in zip(ranked, seen, strict=True):
        assert not set(items) & set(excluded)
    assert (np.diff(scores, axis=1) <= 0).all()
    assert (sasrec_top_k(model, examples, 12, seen)[0] == -1).any()  # fewer unseen items than k: -1 pads


def test_sasrec_learns_a_cyclic_successor_and_picks_dropout_on_validation():
    n_items, rng = 30, np.random.default_rng(0)
    # every user walks the cycle i -> i + 1 from a random start: the next item is always the successor
    walks = {f"u{u}": [(int(s) + t) % n_items for t in range(9)] for u, s in enumerate(rng.integers(0, n_items, 120))}
    train = _prefixes({u: w[:-2] for u, w in walks.items()})
    held = {role: Examples(np.array(list(walks), dtype=object),
                           right_aligned([np.array(w[:-cut]) for w in walks.values()], WIDTH),
                           np.array([w[-cut] for w in walks.values()]))
            for role, cut in (("valid", 2), ("test", 1))}
    config = SASRecConfig(max_length=WIDTH, d_model=32, dropout_grid=(0.0, 0.2), max_epochs=60, patience=5,
                          batch_size=32, lr=5e-3)
    model, report = train_sasrec(train, held["valid"], n_items, config)
    assert [c["dropout"] for c in report["candidates"]] == [0.0, 0.2]
    assert report["chosen"]["valid_ndcg@10"] == max(c["valid_ndcg@10"] for c in report["candidates"])
    seen = [h[h >= 0] for h in held["test"].histories]
    assert ranking_metrics(sasrec_top_k(model, held["test"], 10, seen)[0], held["test"].targets)["recall@10"] > 0.9
