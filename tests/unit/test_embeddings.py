import numpy as np
import pandas as pd

from pipelines.items.text_embeddings import TextEmbeddingConfig, embed_frame, item_text


def test_item_text_skips_missing_fields():
    item = {"title": "Rose Soap", "brand": None, "categories": ["Beauty", "Bath"], "description": "Gentle.",
            "price": 4.5}
    assert item_text(item) == "Rose Soap. Categories: Beauty, Bath. Gentle. Price: $4.50"
    assert item_text({"title": None, "categories": [], "price": float("nan")}) == ""


def test_embed_frame_embeds_text_and_flags_items_without_any():
    items = pd.DataFrame({
        "item_id": ["a", "b", "c"], "content_hash": ["1", "2", "3"],
        "title": ["Rose soap", None, "Lavender soap"], "brand": [None] * 3,
        "categories": [["Beauty"], [], ["Beauty"]], "description": [None] * 3, "price": [None] * 3,
    })
    out = embed_frame(items, TextEmbeddingConfig())
    assert out["error"].tolist() == [None, "no text to embed", None]
    a, c = out["embedding"][0], out["embedding"][2]
    assert a.shape == (384,) and np.isclose(np.linalg.norm(a), 1.0, atol=1e-4)
    assert float(a @ c) > 0.5  # two soaps are neighbours
