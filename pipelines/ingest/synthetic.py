"""A synthetic catalog and lifelong user histories with realistic structure. numpy/pandas only.

Catalog: categories with their own vocabularies, brands and price levels;
titles and descriptions built from them; popularity Zipf-distributed inside
each category. Users: 2-4 interests with Dirichlet weights that drift over
time, occasional exploration, log-normal history lengths (up to 10^5 events),
timestamps spread over a window, and a completion ratio that is higher on a
user's main interests (5% unknown, as when a player does not report it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

# category -> (sub-categories, nouns, adjectives, brand stems, median price)
VOCABULARY: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...], float]] = {
    "Beauty": (("Skin Care", "Makeup", "Fragrance", "Hair Care"),
               ("serum", "moisturizer", "lipstick", "mascara", "cleanser", "perfume", "shampoo", "toner"),
               ("hydrating", "matte", "vegan", "organic", "long-lasting", "gentle", "radiant", "fragrance-free"),
               ("Lumi", "Vela", "Aura", "Petal", "Nori"), 18.0),
    "Electronics": (("Audio", "Computers", "Cameras", "Accessories"),
                    ("headphones", "laptop", "charger", "speaker", "webcam", "keyboard", "monitor", "router"),
                    ("wireless", "portable", "4K", "noise-cancelling", "ergonomic", "fast-charging", "compact", "smart"),
                    ("Voltix", "Nexa", "Orbit", "Quanta", "Pixel"), 80.0),
    "Books": (("Fiction", "Science", "History", "Cooking"),
              ("novel", "guide", "cookbook", "memoir", "atlas", "anthology", "textbook", "handbook"),
              ("illustrated", "bestselling", "classic", "annotated", "complete", "practical", "award-winning", "new"),
              ("Quill", "Folio", "Inkwell", "Harbor", "Lantern"), 15.0),
    "Sports": (("Running", "Cycling", "Yoga", "Camping"),
               ("shoes", "helmet", "mat", "tent", "bottle", "jacket", "backpack", "gloves"),
               ("lightweight", "waterproof", "breathable", "durable", "insulated", "foldable", "reflective", "padded"),
               ("Stride", "Summit", "Pace", "Trail", "Crest"), 45.0),
    "Home": (("Kitchen", "Bedding", "Decor", "Storage"),
             ("kettle", "pillow", "lamp", "blanket", "skillet", "vase", "organizer", "rug"),
             ("ceramic", "stainless", "cozy", "minimalist", "handmade", "stackable", "nonstick", "woven"),
             ("Hearth", "Nest", "Loft", "Oak", "Linen"), 35.0),
    "Toys": (("Puzzles", "Building", "Outdoor", "Plush"),
             ("puzzle", "robot", "kite", "teddy", "blocks", "board game", "drone", "doll"),
             ("educational", "colorful", "interactive", "wooden", "glow-in-the-dark", "giant", "mini", "classic"),
             ("Jolly", "Pip", "Zoom", "Bloom", "Tinker"), 25.0),
    "Grocery": (("Coffee", "Snacks", "Tea", "Pantry"),
                ("coffee beans", "granola", "green tea", "olive oil", "dark chocolate", "pasta", "honey", "almonds"),
                ("single-origin", "roasted", "gluten-free", "raw", "fair-trade", "spicy", "artisan", "sea-salt"),
                ("Harvest", "Grove", "Mill", "Orchard", "Ember"), 12.0),
    "Music": (("Rock", "Jazz", "Classical", "Electronic"),
              ("album", "vinyl", "box set", "live recording", "soundtrack", "EP", "remaster", "compilation"),
              ("deluxe", "limited", "acoustic", "remastered", "instrumental", "live", "collector's", "debut"),
              ("Echo", "Vinyl", "Tempo", "Chord", "Reverb"), 20.0),
}


@dataclass(frozen=True)
class SynthConfig:
    n_items: int = 2_000
    n_users: int = 300
    median_history: int = 120  # events per user, log-normal around this
    max_history: int = 100_000
    min_history: int = 5
    history_sigma: float = 1.0  # log-normal spread of history lengths
    explore_rate: float = 0.1  # share of events outside the user's interests
    unknown_completion_rate: float = 0.05
    start: dt.date = dt.date(2025, 1, 1)  # 300 days end before the demo's run date (2026-01-01)
    days: int = 300
    seed: int = 0


def generate_items(config: SynthConfig, rng: np.random.Generator) -> pd.DataFrame:
    categories = list(VOCABULARY)
    cat_index = rng.integers(0, len(categories), size=config.n_items)
    rows = []
    for i, c in enumerate(cat_index):
        subs, nouns, adjs, brands, median_price = VOCABULARY[categories[c]]
        sub = subs[rng.integers(len(subs))]
        noun = nouns[rng.integers(len(nouns))]
        adj1, adj2 = rng.choice(len(adjs), size=2, replace=False)
        brand = f"{brands[rng.integers(len(brands))]}{'' if rng.random() < 0.5 else ' Co.'}"
        rows.append({
            "item_id": f"I{i:06d}",
            "title": f"{brand} {adjs[adj1]} {noun}",
            "brand": brand,
            "categories": [categories[c], sub],
            "description": (
                f"A {adjs[adj1]}, {adjs[adj2]} {noun} for {sub.lower()} fans. "
                f"Part of {brand}'s {categories[c].lower()} line."
            ),
            "price": round(float(median_price * rng.lognormal(0.0, 0.5)), 2),
        })
    return pd.DataFrame(rows)


def generate_events(config: SynthConfig, items: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    top = items["categories"].str[0].to_numpy()
    categories = list(VOCABULARY)
    by_cat = [np.flatnonzero(top == c) for c in categories]
    # Zipf popularity inside a category: a few hits, a long tail.
    popularity = [1.0 / np.arange(1, len(ids) + 1) ** 1.1 for ids in by_cat]
    popularity = [p / p.sum() for p in popularity]
    item_ids = items["item_id"].to_numpy()
    start = pd.Timestamp(config.start, tz="UTC").value // 10**9
    window = config.days * 86_400

    lengths = rng.lognormal(np.log(config.median_history), config.history_sigma, size=config.n_users)
    lengths = np.clip(lengths.astype(np.int64), config.min_history, config.max_history)
    frames = []
    for u, n in enumerate(lengths):
        k = int(rng.integers(2, 5))
        interests = rng.choice(len(categories), size=k, replace=False)
        # Interest weights drift linearly from one Dirichlet draw to another over the history.
        w0, w1 = rng.dirichlet(np.ones(k), size=2)
        t = np.linspace(0.0, 1.0, n)[:, None]
        weights = (1 - t) * w0 + t * w1
        chosen = interests[(weights.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)]
        explore = rng.random(n) < config.explore_rate
        chosen[explore] = rng.integers(0, len(categories), size=int(explore.sum()))
        picks = np.empty(n, dtype=np.int64)
        for c in np.unique(chosen):
            mask = chosen == c
            picks[mask] = rng.choice(by_cat[c], size=int(mask.sum()), p=popularity[c])
        completion = np.where(explore, rng.beta(2, 5, n), rng.beta(5, 2, n)).round(4)
        completion[rng.random(n) < config.unknown_completion_rate] = np.nan
        seconds = np.sort(rng.integers(0, window, size=n)) + start
        rated = rng.random(n) < 0.3
        rating = np.where(rated, np.clip(np.round(1 + 4 * np.nan_to_num(completion, nan=0.5)), 1, 5), np.nan)
        frames.append(pd.DataFrame({
            "user_id": f"U{u:06d}",
            "item_id": item_ids[picks],
            "ts": pd.to_datetime(seconds, unit="s", utc=True),
            "event_type": "play",
            "rating": rating,
            "completion": completion,
        }))
    return pd.concat(frames, ignore_index=True)


def generate(config: SynthConfig = SynthConfig()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(items, events), identical for the same config and seed."""
    rng = np.random.default_rng(config.seed)
    items = generate_items(config, rng)
    return items, generate_events(config, items, rng)


def write_raw(config: SynthConfig, out_dir: str) -> dict[str, str]:
    """Write items.parquet and events.parquet (the raw files `ingest --format synthetic` reads)."""
    import os

    os.makedirs(out_dir, exist_ok=True)
    items, events = generate(config)
    paths = {"items": os.path.join(out_dir, "items.parquet"), "events": os.path.join(out_dir, "events.parquet")}
    items.to_parquet(paths["items"], index=False)
    events.to_parquet(paths["events"], index=False)
    return paths


def synthetic_item_embeddings(items: pd.DataFrame, dim: int = 64, seed: int = 0) -> np.ndarray:
    """Unit vectors with the catalog's structure: category + sub-category + brand directions + noise.

    A stand-in for content embeddings (gold.item_embeddings) in tests and benchmarks.
    """
    rng = np.random.default_rng(seed)

    def directions(keys: pd.Series, scale: float) -> np.ndarray:
        codes, uniques = pd.factorize(keys)
        return scale * rng.standard_normal((len(uniques), dim))[codes]

    x = (
        directions(items["categories"].str[0], 1.0)
        + directions(items["categories"].str[1], 0.6)
        + directions(items["brand"], 0.3)
        + 0.35 * rng.standard_normal((len(items), dim))
    )
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
