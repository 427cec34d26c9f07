"""train-tiger, train-sasrec, train-popularity -> generate-candidates (the union) -> train-twin -> the union
ranked -> evaluate, gates and rollbacks, on a small synthetic lakehouse.

Each stage is a module-scoped fixture built on the one before, so every test
names the stage it checks and a failure points at that stage.
"""

import dataclasses
import datetime as dt
import math
import pathlib
import shutil

import numpy as np
import pandas as pd
import pytest

from models.cold_start import ColdItems
from models.config import (
    RQVAEConfig,
    RQVAETrainConfig,
    SASRecConfig,
    TigerConfig,
    TigerTrainConfig,
    TwinConfig,
    TwinTrainConfig,
)
from pipelines.behavior.clustering_job import BehaviorClusterConfig, run_cluster_behaviors
from pipelines.candidates import CandidatesConfig, run_generate_candidates
from pipelines.errors import UpstreamTableError
from pipelines.evaluation.evaluate import EvaluateConfig, run_evaluate
from pipelines.ingest.pipeline import IngestConfig, run_ingest
from pipelines.ingest.synthetic import SynthConfig, generate, synthetic_item_embeddings, write_raw
from pipelines.items.assignment_job import AssignSemanticIdsConfig, run_assign_semantic_ids
from pipelines.items.rqvae_job import TrainRQVAEJobConfig, run_train_rqvae
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.lakehouse.catalog import GOLD_ITEM_EMBEDDINGS, Catalog
from pipelines.lakehouse.config import LakehouseConfig
from pipelines.lakehouse.delta import table_version
from pipelines.lakehouse.table_io import read_table, write_table
from pipelines.ranking.config import RerankConfig
from pipelines.ranking.training import TrainTwinJobConfig, run_train_twin
from pipelines.retrieval.inputs import load_retrieval_inputs
from pipelines.retrieval.popularity import fit_popularity
from pipelines.retrieval.retriever import FitContext
from pipelines.retrieval.sasrec import fit_sasrec
from pipelines.retrieval.serving import cold_item_rows, load_tiger, tiger_top_k
from pipelines.retrieval.training import TrainTigerJobConfig, run_train_tiger

pytestmark = pytest.mark.integration

RUN = dt.date(2026, 11, 24)
USERS, TOP_K, DEPTH, FINAL_K = 25, 5, 10, 4
TIGER = TrainTigerJobConfig(run_date=RUN, model=TigerConfig.debug(codebook_size=256),
                            train=TigerTrainConfig(epochs=2, batch_size=64, warmup_steps=10, eval_users=USERS),
                            refit=True)
TWIN = TrainTwinJobConfig(run_date=RUN, model=TwinConfig(d_model=16, heads=2, head_dim=8, mlp_dims=(16,)),
                          train=TwinTrainConfig(epochs=2, negatives=4), rerank=RerankConfig(depth=DEPTH))
SASREC = SASRecConfig(d_model=16, dropout_grid=(0.2,), max_epochs=4, batch_size=16, lr=5e-3)


@pytest.fixture(scope="module")
def semantic_ids(spark, tmp_path_factory) -> tuple[Catalog, ArtifactStore]:
    """ingest -> synthetic item vectors -> RQ-VAE -> semantic IDs."""
    root = tmp_path_factory.mktemp("tiger_jobs")
    catalog = Catalog(LakehouseConfig(root=str(root / "lakehouse")))
    synth = SynthConfig(n_items=120, n_users=USERS, median_history=20, seed=4)
    paths = write_raw(synth, str(root / "raw"))
    run_ingest(spark, catalog, IngestConfig(format="synthetic", dataset="s", run_date=RUN,
                                            events_paths=(paths["events"],), items_paths=(paths["items"],)))
    items, _ = generate(synth)
    vectors = synthetic_item_embeddings(items, dim=16, seed=4)
    rows = [(i, None, "synthetic-16", "synthetic", v.tolist()) for i, v in zip(items["item_id"], vectors, strict=True)]
    write_table(spark, catalog, GOLD_ITEM_EMBEDDINGS.name,
                spark.createDataFrame(rows, GOLD_ITEM_EMBEDDINGS.spark_schema()), mode="overwrite")
    store = ArtifactStore(root=str(root / "artifacts"))
    run_train_rqvae(catalog, store, TrainRQVAEJobConfig(
        run_date=RUN, model=RQVAEConfig(hidden_dims=(32,), latent_dim=8, codebook_size=16),
        train=RQVAETrainConfig(epochs=5, batch_size=64)))
    run_assign_semantic_ids(spark, catalog, store, AssignSemanticIdsConfig(run_date=RUN))
    return catalog, store


@pytest.fixture(scope="module")
def tiger(semantic_ids) -> dict:
    catalog, store = semantic_ids
    return run_train_tiger(catalog, store, TIGER)


@pytest.fixture(scope="module")
def sasrec(semantic_ids) -> str:
    catalog, store = semantic_ids
    context = FitContext(catalog, store, load_retrieval_inputs(catalog), RUN)
    fit_popularity(context)
    return fit_sasrec(context, SASREC)


@pytest.fixture(scope="module")
def candidates(spark, semantic_ids, tiger, sasrec) -> tuple[CandidatesConfig, pd.DataFrame, dict]:
    """The union of TIGER's and SASRec's lists (no ranker yet: their ranks' votes) for RUN."""
    catalog, store = semantic_ids
    config = CandidatesConfig(run_date=RUN, top_k=TOP_K, rerank=False, final_k=TOP_K)
    metrics = run_generate_candidates(spark, catalog, store, config)
    return config, read_table(spark, catalog, "gold.candidates").toPandas(), metrics


@pytest.fixture(scope="module")
def ranker(spark, semantic_ids, candidates) -> dict:
    catalog, store = semantic_ids
    run_cluster_behaviors(spark, catalog, BehaviorClusterConfig(run_date=RUN, holdout="valid_test"))
    return run_train_twin(catalog, store, TWIN)


@pytest.fixture(scope="module")
def reranked(spark, semantic_ids, candidates, ranker) -> pd.DataFrame:
    catalog, store = semantic_ids
    config = dataclasses.replace(candidates[0], rerank=True, top_k=DEPTH, final_k=FINAL_K, tasks=3)
    run_generate_candidates(spark, catalog, store, config)
    return read_table(spark, catalog, "gold.candidates").filter(f"run_date = '{RUN}'").toPandas()


def test_train_tiger_without_semantic_ids_names_the_table(catalog, tmp_path):
    with pytest.raises(FileNotFoundError, match="gold.semantic_ids"):
        run_train_tiger(catalog, ArtifactStore(root=str(tmp_path / "artifacts")), TrainTigerJobConfig(run_date=RUN))


def test_tiger_card_records_the_tables_it_read_and_every_epoch(semantic_ids, tiger):
    catalog, store = semantic_ids
    card = store.read_card("tiger", tiger["version"])
    assert card["data"] == {name: table_version(catalog.location(name)) for name in ("gold.semantic_ids",
                                                                                       "silver.events")}
    assert card["rqvae_version"] == store.latest_version("rqvae")
    steps_per_epoch = math.ceil(tiger["train_examples"] / TIGER.train.batch_size)
    assert (tiger["epochs"], tiger["steps"]) == (2, 2 * steps_per_epoch)
    assert [e["epoch"] for e in card["history"]] == [1, 2]
    assert tiger["best_valid_ndcg@10"] == max(e["valid_ndcg@10"] for e in card["history"])
    # the served weights: refit on every event (held-out ones too) for the epochs validation chose
    assert card["serving_weights"] == "serving.pt" and card["refit"]["epochs"] == tiger["best_epoch"]
    assert card["refit"]["examples"] > tiger["train_examples"]


def test_warm_start_keeps_the_weights_it_started_from(semantic_ids, tiger):
    catalog, store = semantic_ids
    warm = run_train_tiger(catalog, store, dataclasses.replace(TIGER, version="warm", warm_start=True), promote=False)
    assert store.latest_version("tiger") == tiger["version"]  # a candidate: not served until promoted
    source = store.read_card("tiger", "warm")["warm_start"]
    assert source == str(store.directory("tiger", tiger["version"]) / "best.pt") and warm["epochs"] == 2
    assert (store.directory("tiger", "warm") / "warm_start.pt").read_bytes() == pathlib.Path(source).read_bytes()


def test_candidates_are_the_top_k_unseen_real_items_of_every_user(spark, semantic_ids, tiger, sasrec, candidates):
    catalog, _ = semantic_ids
    _, table, metrics = candidates
    assert metrics["users"] == USERS and len(table) == USERS * TOP_K
    assert table.groupby("user_id")["rank"].apply(sorted).map(lambda r: r == [1, 2, 3, 4, 5]).all()
    assert table.groupby("user_id")["item_id"].nunique().eq(TOP_K).all()
    assert set(table["model_version"]) == {f"tiger={tiger['version']},sasrec={sasrec}"}
    assert table["ranker_score"].isna().all()
    # every row says which retrievers found it, with each one's rank (1..TOP_K) and score
    assert {r for rs in table["retrievers"] for r in rs} == {"tiger", "sasrec"}
    assert all(len(r) == len(k) == len(s) > 0 for r, k, s in zip(table["retrievers"], table["retriever_ranks"],
                                                                 table["retriever_scores"], strict=True))
    assert all(1 <= k <= TOP_K for ks in table["retriever_ranks"] for k in ks)
    assert (table["source"] == table["retrievers"].map("+".join)).all()
    ids = read_table(spark, catalog, "gold.semantic_ids").toPandas().set_index("item_id")["semantic_id"]
    assert (table["semantic_id"] == table["item_id"].map(ids)).all()  # every candidate is a real item
    events = read_table(spark, catalog, "silver.events").toPandas()
    seen = set(zip(events.user_id, events.item_id, strict=True))
    assert not any((u, i) in seen for u, i in zip(table.user_id, table.item_id, strict=True))


def test_candidates_rerun_replaces_the_date_and_a_new_date_adds_one(spark, semantic_ids, candidates):
    catalog, store = semantic_ids
    config, table, _ = candidates
    run_generate_candidates(spark, catalog, store, config)
    again = read_table(spark, catalog, "gold.candidates").filter(f"run_date = '{RUN}'").toPandas()
    key = ["user_id", "rank"]
    assert again.sort_values(key).reset_index(drop=True)[["user_id", "rank", "item_id"]].equals(
        table.sort_values(key).reset_index(drop=True)[["user_id", "rank", "item_id"]])
    next_day = RUN + dt.timedelta(1)
    run_generate_candidates(spark, catalog, store, dataclasses.replace(config, run_date=next_day))
    assert read_table(spark, catalog, "gold.candidates").filter(f"run_date = '{next_day}'").count() == len(table)


def test_ranker_refuses_clusters_that_hold_the_held_out_events(spark, semantic_ids, tiger, tmp_path):
    catalog, store = semantic_ids
    copy = Catalog(LakehouseConfig(root=str(tmp_path / "lakehouse")))
    shutil.copytree(catalog.config.root, copy.config.root)
    run_cluster_behaviors(spark, copy, BehaviorClusterConfig(run_date=RUN, holdout="none", full_refresh=True))
    with pytest.raises(UpstreamTableError, match="--holdout valid_test"):
        run_train_twin(copy, store, TWIN)


def test_ranker_card_records_the_fusion_and_the_union_it_was_chosen_on(semantic_ids, tiger, sasrec, ranker):
    _, store = semantic_ids
    card = store.read_card("twin", ranker["version"])
    assert card["hard_negatives_from"] == ["sasrec", "tiger"]
    assert card["retrievers"] == {"tiger": tiger["version"], "sasrec": sasrec}
    fusion = card["fusion"]
    assert fusion["depth"] == DEPTH and fusion["calibration_users"] > 0 and fusion["retrievers"] == ["tiger", "sasrec"]
    assert max(fusion["retriever_weights"]) <= 1.0 and fusion["ranker_weight"] >= 0.0
    assert {"list_ndcg_gain", "list_ndcg_gain_se", "passed"} <= set(fusion["gate"])
    assert card["metrics"]["test_auc"] == ranker["test_auc"]


def test_the_union_is_ordered_by_the_rankers_fusion(semantic_ids, ranker, reranked):
    from pipelines.ranking.fusion import rank_feature

    _, store = semantic_ids
    assert len(reranked) == USERS * FINAL_K and set(reranked["source"]) <= {"tiger", "sasrec", "tiger+sasrec"}
    assert set(reranked["ranker_version"]) == {ranker["version"]} and reranked["ranker_score"].notna().all()
    assert reranked.sort_values(["user_id", "rank"]).groupby("user_id")["score"].apply(
        lambda s: s.is_monotonic_decreasing).all()
    fusion = store.read_card("twin", ranker["version"])["fusion"]
    weights = dict(zip(fusion["retrievers"], fusion["retriever_weights"], strict=True))
    votes = [sum(weights[r] * rank_feature(np.array([k]))[0] for r, k in zip(rs, ks, strict=True))
             for rs, ks in zip(reranked["retrievers"], reranked["retriever_ranks"], strict=True)]
    assert np.allclose(reranked["score"], np.array(votes) + fusion["ranker_weight"] * reranked["ranker_score"])


def test_evaluate_scores_every_method_on_the_same_test_users(spark, semantic_ids, tiger, sasrec, ranker, tmp_path):
    catalog, store = semantic_ids
    report = run_evaluate(spark, catalog, store, EvaluateConfig(run_date=RUN, plot_dir=str(tmp_path / "plots")))
    assert set(report["results"]) == {"tiger", "sasrec", "popularity", "knn", "nightly"}
    assert report["versions"] == {"tiger": tiger["version"], "sasrec": sasrec,
                                  "popularity": store.latest_version("popularity"), "twin": ranker["version"]}
    # TIGER's Recall@10 again, from its top-10 and a plain loop over the test users, the same seen set and
    # the same cold items (no training event; they take the last place) as its card records
    inputs = load_retrieval_inputs(catalog)
    model, _, card = load_tiger(store, tiger["version"], inputs.rqvae_version, None)
    cold = cold_item_rows(store, tiger["version"], card, card["weights"], inputs.index)
    assert cold is not None and len(cold) > 0  # the synthetic catalog has items no training event reached
    test = inputs.sequences.test
    top = tiger_top_k(model, inputs.index, test, 10, 20, True, progress=False,
                      exclude_items=inputs.sequences.seen("test"), cold=ColdItems(cold)).items.numpy()
    hits = [int(target in row) for row, target in zip(top.tolist(), test.targets.tolist(), strict=True)]
    # the headline counts every held-out user: those whose target has no semantic ID are misses
    all_users = len(hits) + inputs.sequences.stats["test_targets_without_semantic_id"]
    for method, metrics in report["results"].items():
        assert metrics["users"] == all_users, method
        assert metrics["recall@10"] == pytest.approx(metrics["with_id/recall@10"] * len(hits) / all_users)
    assert report["results"]["tiger"]["with_id/recall@10"] == pytest.approx(sum(hits) / len(hits))
    for method, metrics in report["results"].items():  # every comparison is paired, with its standard error
        assert {"vs_best_other/ndcg@10", "vs_best_other/ndcg@10_se", "ndcg@10_se"} <= set(metrics), method
    stored = read_table(spark, catalog, "ops.metrics").filter("job = 'evaluate'").toPandas()
    by_name = dict(zip(stored["metric"], stored["value"], strict=True))
    for method, metrics in report["results"].items():
        for name, value in metrics.items():
            assert by_name[f"{method}/{name}"] == pytest.approx(value), f"{method}/{name}"
    assert (tmp_path / "plots" / f"evaluation_{RUN.isoformat()}.png").stat().st_size > 0


def test_spark_and_local_engines_write_the_same_rows(spark, semantic_ids, candidates, ranker, reranked, tmp_path):
    """`reranked` came from the Spark engine (users spread over 3 tasks); the local one scores them all here."""
    catalog, store = semantic_ids
    copy = Catalog(LakehouseConfig(root=str(tmp_path / "lakehouse")))
    shutil.copytree(catalog.config.root, copy.config.root)
    config = dataclasses.replace(candidates[0], rerank=True, top_k=DEPTH, final_k=FINAL_K, engine="local")
    run_generate_candidates(spark, copy, store, config)
    local = read_table(spark, copy, "gold.candidates").filter(f"run_date = '{RUN}'").toPandas()
    key = ["user_id", "rank"]
    spark_rows, local = (t.sort_values(key).reset_index(drop=True) for t in (reranked, local))
    exact = ["run_date", "user_id", "rank", "item_id", "semantic_id", "source", "model_version", "ranker_version"]
    assert spark_rows[exact].equals(local[exact])
    assert spark_rows["retriever_ranks"].map(list).equals(local["retriever_ranks"].map(list))
    for column in ("score", "ranker_score"):
        assert np.allclose(spark_rows[column], local[column], rtol=1e-5, atol=1e-6), column


def test_a_retriever_added_by_a_test_serves_through_the_union(spark, semantic_ids, candidates, tmp_path):
    """One module's worth of retriever (here: the catalog's last items) and one registry entry."""
    from pipelines.retrieval.registry import RETRIEVERS, register
    from pipelines.retrieval.retriever import Retrieved, RetrieverSpec

    catalog, store = semantic_ids

    @dataclasses.dataclass(frozen=True)
    class LastItems:
        n_items: int
        version: str = "v1"
        name: str = "last_items"

        def top_k(self, examples, k, seen):
            rows = np.arange(self.n_items - 1, self.n_items - 1 - k, -1)
            items = np.array([([int(r) for r in rows if r not in set(s)] + [-1] * k)[:k] for s in seen])
            return Retrieved(items, np.where(items >= 0, -np.arange(k, dtype=float), -np.inf))

    def fit(context):
        import torch

        folder = context.store.directory("last_items", "v1")
        folder.mkdir(parents=True, exist_ok=True)
        torch.save({}, folder / "last_items.pt")  # nothing to learn; the card still checksums its file
        context.store.write_card("last_items", "v1", {"weights": "last_items.pt"})
        return "v1"

    register(RetrieverSpec("last_items", fit,
                           lambda store, version, items, device, serving: LastItems(len(items.index.item_ids))))
    try:
        fit(FitContext(catalog, store, load_retrieval_inputs(catalog), RUN))
        copy = Catalog(LakehouseConfig(root=str(tmp_path / "lakehouse")))
        shutil.copytree(catalog.config.root, copy.config.root)
        config = dataclasses.replace(candidates[0], retrievers=("tiger", "last_items"), engine="local")
        run_generate_candidates(spark, copy, store, config)
        rows = read_table(spark, copy, "gold.candidates").filter(f"run_date = '{RUN}'").toPandas()
        assert any("last_items" in r for r in rows["retrievers"]) and any("tiger" in r for r in rows["retrievers"])
        assert "last_items=v1" in set(rows["model_version"]).pop()
    finally:
        RETRIEVERS.pop("last_items")


def test_a_dense_head_tiger_trains_and_serves_its_cold_items(spark, semantic_ids, tiger):
    from pipelines.candidates import load_serving_models, plan_serving
    from pipelines.retrieval.registry import retriever_spec
    from pipelines.retrieval.sequences import every_event_examples

    catalog, store = semantic_ids
    config = dataclasses.replace(TIGER, model=dataclasses.replace(TIGER.model, dense_head=True), version="dense")
    run_train_tiger(catalog, store, config, promote=False)
    card = store.read_card("tiger", "dense")
    assert card["config"]["model"]["dense_head"] and card["config"]["model"]["item_vector_dim"] == 16
    assert card["dense"]["beam_weight"] in TIGER.train.beam_weights
    assert {e["beam_weight"] for e in card["history"]} <= set(TIGER.train.beam_weights)
    inputs = load_retrieval_inputs(catalog)
    n = len(inputs.index.item_ids)
    # evaluation and gates read the held-out weights: their cold items are those no training example holds
    held_out = retriever_spec("tiger").load(store, "dense", inputs, None, False)
    assert held_out.dense.inputs.cold_items.tolist() == inputs.sequences.train.items_never_seen(n).tolist()
    # tonight's list reads the weights refit on every event, with gold.item_embeddings pinned by the plan
    plan = plan_serving(catalog, store, CandidatesConfig(run_date=RUN, top_k=TOP_K, rerank=False,
                                                         versions=(("tiger", "dense"),)))
    assert "gold.item_embeddings" in dict(plan.versions)
    served = load_serving_models(plan, None).nightly.retrievers["tiger"]
    events = read_table(spark, catalog, "silver.events").toPandas()
    every_event = every_event_examples(events, inputs.index, TIGER.split.max_history)
    assert served.dense.inputs.cold_items.tolist() == every_event.items_never_seen(n).tolist()
    test = inputs.sequences.test
    found = served.top_k(test, TOP_K, inputs.sequences.seen("test"))
    assert found.items.shape == (len(test), TOP_K) and (found.items >= 0).all()
    for row, seen in zip(found.items, inputs.sequences.seen("test"), strict=True):
        assert len(set(row.tolist())) == TOP_K and not set(row.tolist()) & set(np.asarray(seen).tolist())
    # wide enough to hold every unseen item, the list reaches the cold ones too
    cold = set(held_out.dense.inputs.cold_items.tolist())
    wide = held_out.top_k(test, n, inputs.sequences.seen("test"))
    assert not cold or cold <= set(wide.items.ravel().tolist())


def test_the_trainers_run_in_two_processes_and_write_one_artifact_each(spark, semantic_ids, ranker):
    """`train-tiger --distributed 2` as Airflow launches it (its own process hosting TorchDistributor); SASRec
    and the ranker through their jobs' configs in 2 processes. Resuming: test_distributed_training.py."""
    import json
    import subprocess

    from tests.conftest import job_command, job_env

    catalog, store = semantic_ids
    command = job_command("train_tiger", "--size", "test", "--distributed", "2", "--version", "two", "--epochs", "1",
                          "--lakehouse", catalog.config.root, "--artifacts", store.root, "--run-date", str(RUN),
                          "--candidate")
    done = subprocess.run(command, env=job_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["epochs"] == 1  # stdout holds the result alone: the ranks' logs go to stderr
    card = store.read_card("tiger", "two")
    assert card["processes"] == 2 and card["metrics"]["epochs"] == 1 and [e["epoch"] for e in card["history"]] == [1]
    assert {"best.pt", "checkpoint.pt"} <= {p.name for p in store.directory("tiger", "two").iterdir()}
    assert "rank 0" in done.stderr and "rank 1" not in done.stderr  # progress and logs from rank 0 only

    context = FitContext(catalog, store, load_retrieval_inputs(catalog), RUN, version="two", promote=False,
                         processes=2)
    fit_sasrec(context, SASREC)
    assert store.read_card("sasrec", "two")["processes"] == 2
    twin = run_train_twin(catalog, store, dataclasses.replace(TWIN, version="two", processes=2))
    assert store.read_card("twin", "two")["processes"] == 2 and twin["test_auc"] > 0
