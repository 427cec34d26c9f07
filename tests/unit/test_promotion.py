"""Models promoted only when better: the gate keeps a worse candidate out; promote and rollback by hand."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from models.config import SASRecConfig
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.lakehouse.catalog import Catalog
from pipelines.lakehouse.config import LakehouseConfig
from pipelines.ranking.nightly import UNION_WIDTH
from pipelines.retrieval.inputs import RetrievalInputs
from pipelines.retrieval.promotion import GateConfig, gate
from pipelines.retrieval.retriever import FitContext
from pipelines.retrieval.sasrec import fit_sasrec
from pipelines.retrieval.sequences import ItemIndex, build_sequences
from pipelines.splits import SplitConfig

RUN = dt.date(2026, 1, 1)
N_ITEMS = 30
SASREC = SASRecConfig(d_model=32, dropout_grid=(0.0,), max_epochs=40, patience=5, batch_size=32, lr=5e-3)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """Users walking the cycle i -> i + 1: a next item any trained sequence model gets right."""
    index = ItemIndex(np.array([f"i{k:02d}" for k in range(N_ITEMS)], dtype=object),
                      np.zeros((N_ITEMS, 4), dtype=np.int64), np.array([f"0-0-0-{k}" for k in range(N_ITEMS)], dtype=object))
    sequences = build_sequences(lake_events(), index, SplitConfig(max_history=UNION_WIDTH))
    inputs = RetrievalInputs(index, sequences, "rq", {"gold.semantic_ids": 0, "silver.events": 0})
    root = tmp_path_factory.mktemp("promotion")
    catalog = Catalog(LakehouseConfig(root=str(root / "lakehouse")))  # nothing is read: the sequences are given
    store = ArtifactStore(root=str(root / "artifacts"))
    served = fit_sasrec(FitContext(catalog, store, inputs, RUN, version="trained"), SASREC)
    return catalog, store, inputs, served


def test_a_worse_candidate_is_not_promoted(lake):
    catalog, store, inputs, served = lake
    fit_sasrec(FitContext(catalog, store, inputs, RUN, version="untrained", promote=False, seed=1),
               SASRecConfig(d_model=32, dropout_grid=(0.0,), max_epochs=0))  # zero steps
    assert store.latest_version("sasrec") == served == "trained"
    decision = gate(catalog, store, "sasrec", "untrained", inputs)
    assert not decision.promoted and decision.difference < -2 * decision.difference_se
    assert store.latest_version("sasrec") == "trained" and "worse by more than 2" in decision.reason
    assert decision.metrics()["promoted"] == 0.0


def test_an_equal_candidate_is_promoted_and_rollback_restores(lake):
    catalog, store, inputs, _ = lake
    fit_sasrec(FitContext(catalog, store, inputs, RUN, version="retrained", promote=False), SASREC)
    decision = gate(catalog, store, "sasrec", "retrained", inputs, GateConfig(max_worse_se=2.0))
    assert decision.promoted and store.latest_version("sasrec") == "retrained"
    assert store.rollback("sasrec") == "trained" and store.latest_version("sasrec") == "trained"
    history = store.served_history("sasrec")
    assert [e["version"] for e in history][-3:] == ["trained", "retrained", "trained"]
    assert history[-1]["reason"].startswith("rollback from retrained")
    with pytest.raises(FileNotFoundError, match="no sasrec artifact"):
        store.promote("sasrec", "never-trained", "by hand")


def test_refit_serves_weights_trained_on_every_event(lake, monkeypatch):
    """The held-out weights never saw a user's last two events; the refit ones did (chosen epochs, no
    validation), and serving loads them while gates and evaluation keep the held-out ones."""
    import pipelines.retrieval.inputs as inputs_module
    from pipelines.retrieval.sasrec import load_sasrec

    catalog, store, inputs, _ = lake
    monkeypatch.setattr(inputs_module, "events_of", lambda catalog, inputs: lake_events())  # no table: the same events
    version = fit_sasrec(FitContext(catalog, store, inputs, RUN, version="refit", promote=False, refit=True), SASREC)
    card = store.read_card("sasrec", version)
    assert card["serving_weights"] == "serving.pt" and card["refit"]["epochs"] == card["metrics"]["best_epoch"]
    assert card["refit"]["examples"] == 150 * 8  # every event but each user's first is a target
    served, held_out = (load_sasrec(store, version, inputs, serving=flag) for flag in (True, False))
    weights = [dict(m.model.state_dict()) for m in (served, held_out)]
    assert any(not np.allclose(weights[0][k].numpy(), weights[1][k].numpy()) for k in weights[0])
    # serving: the next item after each user's whole history (the cycle's successor), seen items excluded
    serve = inputs.sequences.serve
    top = served.top_k(serve, 1, inputs.sequences.seen("serve")).items[:, 0]
    last = serve.histories[:, -1]
    assert (top == (last + 1) % N_ITEMS).mean() > 0.9


def lake_events():
    rng = np.random.default_rng(0)
    start = dt.datetime(2024, 1, 1)
    rows = [(f"u{u:03d}", f"i{(s + t) % N_ITEMS:02d}", start + dt.timedelta(minutes=t))
            for u, s in enumerate(rng.integers(0, N_ITEMS, 150)) for t in range(9)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "ts"])
