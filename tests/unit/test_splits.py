import datetime as dt

import pandas as pd

from pipelines.splits import SplitConfig, assign_roles, leave_one_out


def _events(rows):
    return pd.DataFrame(
        [(u, i, dt.datetime(2024, 1, 1) + dt.timedelta(seconds=s)) for u, i, s in rows],
        columns=["user_id", "item_id", "ts"],
    )


def test_last_is_test_second_last_is_valid():
    events = _events([("u", "c", 3), ("u", "a", 1), ("u", "d", 4), ("u", "b", 2), ("v", "x", 1), ("v", "y", 2)])
    roles = assign_roles(events)
    by_item = dict(zip(events["item_id"], roles, strict=True))
    assert by_item == {"a": "train", "b": "train", "c": "valid", "d": "test", "x": "train", "y": "train"}


def test_leave_one_out_examples_and_history_cut():
    rows = [("u", f"i{k}", k) for k in range(30)]
    split = leave_one_out(_events(rows), SplitConfig(max_history=5))
    test = split["test"].iloc[0]
    assert test["target"] == "i29" and test["history"] == ["i24", "i25", "i26", "i27", "i28"]
    valid = split["valid"].iloc[0]
    assert valid["target"] == "i28" and valid["history"] == ["i23", "i24", "i25", "i26", "i27"]
    assert split["train"].iloc[0]["history"] == [f"i{k}" for k in range(28)]


def test_ties_broken_by_item_id_and_short_users_train_only():
    events = _events([("u", "b", 5), ("u", "a", 5), ("u", "c", 1), ("w", "z", 1), ("w", "q", 2)])
    by_pair = dict(zip(zip(events["user_id"], events["item_id"], strict=True), assign_roles(events), strict=True))
    assert by_pair[("u", "b")] == "test" and by_pair[("u", "a")] == "valid" and by_pair[("u", "c")] == "train"
    assert by_pair[("w", "z")] == "train" and by_pair[("w", "q")] == "train"
    split = leave_one_out(events)
    assert set(split["test"]["user_id"]) == {"u"}


def test_ties_in_time_keep_the_order_the_source_wrote_them():
    """Same second: the later line of the file is the later event, whatever the item ids say."""
    events = _events([("u", "z", 5), ("u", "a", 5), ("u", "m", 1)]).assign(
        source_file=["day.csv", "day.csv", "day.csv"], source_line=[2, 3, 1])
    by_item = dict(zip(events["item_id"], assign_roles(events), strict=True))
    assert by_item == {"m": "train", "z": "valid", "a": "test"}
    split = leave_one_out(events)
    assert split["test"].iloc[0]["target"] == "a" and split["test"].iloc[0]["history"] == ["m", "z"]
    # across files (a late delivery), the file name orders, then its line
    later_file = events.assign(source_file=["b.csv", "a.csv", "a.csv"], source_line=[1, 9, 1])
    assert dict(zip(later_file["item_id"], assign_roles(later_file), strict=True))["z"] == "test"
