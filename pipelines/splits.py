"""The one leave-one-out split that training and evaluation share.

Per user, events ordered by (ts, source_file, source_line): the last is test, the second to
last validation, the rest training. Users with fewer than 3 events are
training only (nothing to hold out). Histories given to a model are cut to
the last `max_history` items before the target, as in TIGER (20).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

Role = Literal["train", "valid", "test"]
# Events of the same second keep the order their source wrote them (file, then line); item_id only
# orders rows that carry no source position (ad-hoc frames in tests and tools).
ORDER = ("ts", "source_file", "source_line", "item_id")
# The silver.events columns every sequence reader needs: the key and the order.
SEQUENCE_COLUMNS = ("user_id", "item_id", "ts", "source_file", "source_line")


def in_event_order(events: pd.DataFrame) -> pd.DataFrame:
    """Each user's events in the one order (see ORDER); columns it lacks are skipped (ad-hoc frames)."""
    order = [c for c in ORDER if c in events.columns]
    return events.sort_values(["user_id", *order], kind="stable")
MIN_EVENTS_TO_HOLD_OUT = 3


@dataclass(frozen=True)
class SplitConfig:
    max_history: int = 20


def assign_roles(events: pd.DataFrame) -> pd.Series:
    """'train' / 'valid' / 'test' for each row of `events` (user_id, item_id, ts), index-aligned."""
    ordered = in_event_order(events)
    from_end = ordered.groupby("user_id", sort=False).cumcount(ascending=False)
    size = ordered.groupby("user_id", sort=False)["item_id"].transform("size")
    role = pd.Series("train", index=ordered.index, dtype=object)
    held = size >= MIN_EVENTS_TO_HOLD_OUT
    role[held & (from_end == 0)] = "test"
    role[held & (from_end == 1)] = "valid"
    return role.reindex(events.index)


def assign_roles_spark(events: DataFrame) -> DataFrame:
    """The same rule on Spark: adds a `split` column."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    by_user = Window.partitionBy("user_id")
    backwards = by_user.orderBy(*[F.col(c).desc() for c in ORDER if c in events.columns])
    from_end = F.row_number().over(backwards) - 1
    held = F.count(F.lit(1)).over(by_user) >= MIN_EVENTS_TO_HOLD_OUT
    return events.withColumn(
        "split",
        F.when(held & (from_end == 0), "test").when(held & (from_end == 1), "valid").otherwise("train"),
    )


def leave_one_out(events: pd.DataFrame, config: SplitConfig = SplitConfig()) -> dict[Role, pd.DataFrame]:
    """Examples per role: user_id, history (item ids, oldest first, at most max_history), target.

    'train' holds each user's full training sequence as `history` and no target:
    models build their own prefixes from it.
    """
    ordered = in_event_order(events)
    sequences = ordered.groupby("user_id", sort=True)["item_id"].agg(list)
    cut = config.max_history
    train, valid, test = [], [], []
    for user, items in sequences.items():
        if len(items) < MIN_EVENTS_TO_HOLD_OUT:
            train.append((user, items, None))
            continue
        train.append((user, items[:-2], None))
        valid.append((user, items[:-2][-cut:], items[-2]))
        test.append((user, items[:-1][-cut:], items[-1]))
    columns = ["user_id", "history", "target"]
    return {
        "train": pd.DataFrame(train, columns=columns),
        "valid": pd.DataFrame(valid, columns=columns),
        "test": pd.DataFrame(test, columns=columns),
    }
