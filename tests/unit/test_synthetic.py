from pipelines.ingest.synthetic import SynthConfig, generate

SMALL = SynthConfig(n_items=200, n_users=20, median_history=50, seed=3)


def test_deterministic_for_a_seed():
    items_a, events_a = generate(SMALL)
    items_b, events_b = generate(SMALL)
    assert items_a.equals(items_b) and events_a.equals(events_b)
    _, events_c = generate(SynthConfig(n_items=200, n_users=20, median_history=50, seed=4))
    assert not events_a.equals(events_c)


def test_structure_is_realistic():
    items, events = generate(SMALL)
    assert items["item_id"].is_unique and (items["price"] > 0).all()
    assert items["categories"].map(len).eq(2).all() and items["title"].str.len().gt(5).all()
    assert set(events["item_id"]) <= set(items["item_id"])
    assert events.groupby("user_id")["ts"].apply(lambda s: s.is_monotonic_increasing).all()
    completion = events["completion"].dropna()
    assert completion.between(0, 1).all() and events["completion"].isna().any()
    # users concentrate on a few interests: the top category covers well over 1/8 of each history
    top = items.set_index("item_id")["categories"].str[0]
    share = events.assign(c=events["item_id"].map(top)).groupby("user_id")["c"].agg(
        lambda s: s.value_counts(normalize=True).iloc[0]
    )
    assert share.median() > 0.3


def test_long_histories_up_to_the_cap():
    config = SynthConfig(n_items=500, n_users=2, median_history=100_000, max_history=100_000,
                         history_sigma=0.0, seed=1)
    _, events = generate(config)
    assert events.groupby("user_id").size().tolist() == [100_000, 100_000]
