"""One seen set for every method: all of the user's items before the target, not the model's cut history."""

import datetime as dt

import numpy as np
import pandas as pd
import torch

from models.config import SASRecConfig
from models.sasrec import SASRec, sasrec_top_k
from models.seen import top_k_unseen
from pipelines.evaluation.baselines import knn_topk, popularity_topk
from pipelines.retrieval.sequences import ItemIndex, build_sequences
from pipelines.splits import SplitConfig

N_ITEMS = 40


def _sequences(width=5):
    index = ItemIndex(np.array([f"i{k:02d}" for k in range(N_ITEMS)], dtype=object),
                      np.zeros((N_ITEMS, 4), dtype=np.int64), np.array([f"0-0-0-{k}" for k in range(N_ITEMS)], dtype=object))
    start = dt.datetime(2024, 1, 1)
    rows = [(u, f"i{(3 * u + t) % N_ITEMS:02d}", start + dt.timedelta(minutes=t), "f.csv", 10 * u + t)
            for u in range(6) for t in range(12)]
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "ts", "source_file", "source_line"]).astype({"user_id": str})
    return build_sequences(events, index, SplitConfig(max_history=width))


def test_the_seen_set_is_everything_before_the_target_not_the_cut_history():
    sequences = _sequences(width=5)
    for role, before in (("test", 11), ("valid", 10)):
        examples, seen = getattr(sequences, role), sequences.seen(role)
        assert len(seen) == len(examples)
        for history, items in zip(examples.histories, seen, strict=True):
            assert len(items) == before  # all of them, though the model reads only 5
            assert set(history[history >= 0]) <= set(items.tolist())
    assert [len(s) for s in sequences.seen("serve")] == [12] * 6


def test_every_method_excludes_the_same_seen_set():
    sequences = _sequences(width=5)
    test, seen = sequences.test, sequences.seen("test")
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    sasrec = SASRec(N_ITEMS, SASRecConfig(max_length=5, d_model=8), 0.0)
    lists = {
        "popularity": popularity_topk(rng.random(N_ITEMS), len(test), 10, seen),
        "knn": knn_topk(rng.normal(size=(N_ITEMS, 4)).astype(np.float32), test.histories, 10, seen),
        "sasrec": sasrec_top_k(sasrec, test, 10, seen)[0],
        "dense": top_k_unseen(lambda a, b: rng.random((b - a, N_ITEMS)), len(test), 10, seen),
    }
    for name, ranked in lists.items():
        for items, excluded in zip(ranked, seen, strict=True):
            assert not set(items[items >= 0].tolist()) & set(excluded.tolist()), name
