import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.items.semantic_ids import (
    SemanticIdCapacityError,
    assign_collision_tokens,
    assign_collision_tokens_of_groups,
    assign_semantic_ids,
    chance_prefix_share,
    code_metrics,
    neighbour_prefix_share,
    semantic_id_string,
)


def codes_frame(rows):
    return pd.DataFrame(rows, columns=["item_id", "c0", "c1", "c2"])


def test_collisions_get_distinct_tokens_in_item_order():
    out = assign_semantic_ids(codes_frame([("b", 1, 2, 3), ("a", 1, 2, 3), ("c", 0, 0, 0)]), None, capacity=4)
    ids = {r.item_id: semantic_id_string([r.c0, r.c1, r.c2, r.c3]) for r in out.itertuples()}
    assert ids == {"a": "1-2-3-0", "b": "1-2-3-1", "c": "0-0-0-0"}


def test_existing_tokens_are_kept_and_newcomers_take_free_ones():
    previous = pd.DataFrame({"item_id": ["b", "x"], "c0": [1, 1], "c1": [2, 2], "c2": [3, 3], "c3": [0, 2]})
    now = codes_frame([("a", 1, 2, 3), ("b", 1, 2, 3), ("x", 1, 2, 3), ("z", 1, 2, 3)])
    out = assign_semantic_ids(now, previous, capacity=4).set_index("item_id").c3
    assert (out["b"], out["x"]) == (0, 2)  # nobody renumbered
    assert (out["a"], out["z"]) == (1, 3)  # smallest free tokens, in item order


def test_item_whose_codes_changed_leaves_its_old_group():
    previous = pd.DataFrame({"item_id": ["a"], "c0": [1], "c1": [2], "c2": [3], "c3": [5]})
    out = assign_semantic_ids(codes_frame([("a", 9, 9, 9)]), previous, capacity=8)
    assert out.iloc[0][["c0", "c1", "c2", "c3"]].tolist() == [9, 9, 9, 0]


def test_full_group_fails_naming_it():
    rows = [(f"i{k}", 7, 8, 9) for k in range(5)]
    with pytest.raises(SemanticIdCapacityError, match="7-8-9 holds 5 items"):
        assign_semantic_ids(codes_frame(rows), None, capacity=4)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 1)), min_size=1, max_size=40),
       st.integers(0, 40))
def test_ids_unique_and_stable_when_items_arrive(codes, split):
    frame = codes_frame([(f"item{i:03d}", *c) for i, c in enumerate(codes)])
    first = assign_semantic_ids(frame.iloc[:split], None, capacity=64)
    both = assign_semantic_ids(frame, first, capacity=64)
    keys = both[["c0", "c1", "c2", "c3"]].apply(tuple, axis=1)
    assert keys.is_unique and len(both) == len(frame)
    merged = first.merge(both, on="item_id", suffixes=("_old", "_new"))
    assert (merged.c3_old == merged.c3_new).all()  # earlier items untouched
    assert (both.c3 >= 0).all() and (both.c3 < 64).all()


def test_code_metrics():
    codes = np.array([[0, 0, 0], [0, 0, 0], [1, 1, 1], [1, 2, 3]])
    m = code_metrics(codes, codebook_size=4)
    assert m["level0_utilization"] == 0.5 and m["level2_utilization"] == 0.75
    assert m["unique_3code_fraction"] == 0.5 and m["largest_collision_group"] == 2
    assert m["level0_perplexity"] == pytest.approx(2.0)
    assert m["min_level_utilization"] == 0.5


def test_neighbour_prefix_share():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 8)) * 10
    labels = np.repeat([0, 1], 30)
    x = centres[labels] + rng.normal(size=(60, 8)) * 0.1
    assert neighbour_prefix_share(x, labels, k=5) == 1.0
    assert neighbour_prefix_share(x, rng.permutation(labels), k=5) < 0.8


def test_neighbour_prefix_share_never_counts_the_item_itself():
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.7, 0.7]])  # two pairs of duplicates
    codes = np.arange(5)  # every item its own code: no neighbour can share one
    assert neighbour_prefix_share(x, codes, k=2) == 0.0
    assert neighbour_prefix_share(x, np.array([0, 0, 1, 1, 2]), k=1) == 0.8  # each duplicate finds its twin


def test_chance_prefix_share():
    assert chance_prefix_share(np.zeros(5, dtype=int)) == 1.0  # one code: every other item shares it
    assert chance_prefix_share(np.arange(5)) == 0.0
    assert chance_prefix_share(np.array([0, 0, 1, 1])) == pytest.approx(1 / 3)  # 1 of an item's 3 others
    codes = np.random.default_rng(0).integers(0, 16, size=4000)
    assert chance_prefix_share(codes) == pytest.approx(1 / 16, rel=0.05)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1), st.integers(0, 1), st.one_of(st.none(), st.integers(0, 5))),
                min_size=1, max_size=40))
def test_all_groups_at_once_equal_the_rule_group_by_group(rows):
    """The vectorised assignment (all-newcomer and all-holder groups) gives the per-group rule's tokens."""
    frame = pd.DataFrame([(f"item{i:03d}", c0, c1, c2, np.nan if t is None else float(t))
                          for i, (c0, c1, c2, t) in enumerate(rows)],
                         columns=["item_id", "c0", "c1", "c2", "previous_token"])
    expected = pd.concat([assign_collision_tokens(g, 64) for _, g in frame.groupby(["c0", "c1", "c2"])])
    got = assign_collision_tokens_of_groups(frame, 64)
    assert got.set_index("item_id").sort_index().equals(expected.set_index("item_id").sort_index())
