"""User histories as item-index sequences for the sequence models (pure pandas/numpy).

Built on the shared leave-one-out split (pipelines/splits.py): the split is taken on
all events first, so every model sees the same roles, and only then are
items without a semantic ID removed from histories (counted, never silent).
Histories are right-aligned in a fixed-width array, -1 = padding.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.examples import Examples
from pipelines.splits import (
    MIN_EVENTS_TO_HOLD_OUT,
    SEQUENCE_COLUMNS,
    SplitConfig,
    in_event_order,
    leave_one_out,
)


@dataclass(frozen=True)
class ItemIndex:
    """Rows 0..N-1 of every item array in the models; sorted by item_id."""

    item_ids: np.ndarray  # str
    codes: np.ndarray  # [N, levels] int64
    semantic_ids: np.ndarray  # str, "a-b-c-d"

    @classmethod
    def from_semantic_ids(cls, table: pd.DataFrame) -> ItemIndex:
        table = table.sort_values("item_id", kind="stable")
        return cls(
            item_ids=table["item_id"].to_numpy(dtype=object),
            codes=np.stack(table["codes"].to_numpy()).astype(np.int64),
            semantic_ids=table["semantic_id"].to_numpy(dtype=object),
        )

    @functools.cached_property
    def _lookup(self) -> pd.Index:
        # built once: hashing every item id again per call made per-user lookups quadratic-ish
        return pd.Index(self.item_ids)

    def rows(self, item_ids: pd.Series | np.ndarray) -> np.ndarray:
        """Row index of each item id, -1 for unknown items."""
        return np.asarray(self._lookup.get_indexer(np.asarray(item_ids, dtype=object)), dtype=np.int64)

    def known_rows_of_each(self, lists: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Each list of item ids as its item rows, unknown items left out; one lookup for all lists."""
        lengths = np.fromiter((len(items) for items in lists), dtype=np.int64, count=len(lists))
        flat = self.rows(np.fromiter(itertools.chain.from_iterable(lists), dtype=object, count=int(lengths.sum())))
        return [rows[rows >= 0] for rows in np.split(flat, np.cumsum(lengths)[:-1])] if len(lists) else []


def right_aligned(sequences: list[np.ndarray], width: int) -> np.ndarray:
    out = np.full((len(sequences), width), -1, dtype=np.int64)
    for row, sequence in enumerate(sequences):
        tail = sequence[-width:]
        if len(tail):
            out[row, width - len(tail):] = tail
    return out


@dataclass(frozen=True)
class SequenceData:
    train: Examples  # every prefix of every training sequence
    valid: Examples
    test: Examples
    serve: Examples  # each user's latest history, for tonight's candidates
    serve_seen: list[np.ndarray]  # every item row each serve user ever had (kept out of candidates)
    serve_events: np.ndarray  # each serve user's number of events (all of them, known items or not)
    stats: dict[str, float]
    # every item row each held-out example's user had before its target (the histories above are cut)
    valid_seen: list[np.ndarray] = field(default_factory=list)
    test_seen: list[np.ndarray] = field(default_factory=list)

    def seen(self, role: str) -> list[np.ndarray]:
        """The one seen set of `role` ("valid", "test", "serve") that every method excludes: all of the
        user's items before the target, as tonight's candidates exclude everything the user had."""
        return {"valid": self.valid_seen, "test": self.test_seen, "serve": self.serve_seen}[role]


def build_sequences(events: pd.DataFrame, index: ItemIndex, split: SplitConfig = SplitConfig()) -> SequenceData:
    """events (user_id, item_id, ts, and source_file/source_line where known) -> examples per role, in item
    rows of `index`."""
    width = split.max_history
    roles = leave_one_out(events[[c for c in SEQUENCE_COLUMNS if c in events.columns]],
                          SplitConfig(max_history=10**9))
    known = index.rows(events["item_id"]) >= 0
    stats: dict[str, float] = {"events": float(len(events)), "events_without_semantic_id": float((~known).sum())}

    train = prefix_examples(roles["train"]["user_id"], index.known_rows_of_each(list(roles["train"]["history"])), width)

    held: dict[str, Examples] = {}
    seen: dict[str, list[np.ndarray]] = {}
    for role in ("valid", "test"):
        frame = roles[role]
        target_rows = index.rows(frame["target"])
        keep = target_rows >= 0
        stats[f"{role}_targets_without_semantic_id"] = float((~keep).sum())
        before_target = index.known_rows_of_each(list(frame["history"][keep]))  # the whole history
        held[role] = Examples(frame["user_id"].to_numpy(dtype=object)[keep], right_aligned(before_target, width),
                              target_rows[keep])
        seen[role] = [np.unique(rows) for rows in before_target]
    serving = serving_histories(events, index, width)
    stats.update({
        "train_examples": float(len(train)), "valid_examples": float(len(held["valid"])),
        "test_examples": float(len(held["test"])), "users": float(len(serving.examples)),
        "users_too_short_to_hold_out": float((serving.events_per_user < MIN_EVENTS_TO_HOLD_OUT).sum()),
    })
    return SequenceData(train, held["valid"], held["test"], serving.examples, serving.seen,
                        serving.events_per_user, stats, seen["valid"], seen["test"])


def prefix_examples(users: Sequence[str], sequences: Sequence[np.ndarray], width: int) -> Examples:
    """Every prefix of each user's sequence of item rows: the items before position t predict item t."""
    out_users, histories, targets = [], [], []
    for user, sequence in zip(users, sequences, strict=True):
        for t in range(1, len(sequence)):
            out_users.append(user)
            histories.append(sequence[max(0, t - width):t])
            targets.append(sequence[t])
    return Examples(np.asarray(out_users, dtype=object), right_aligned(histories, width),
                    np.asarray(targets, np.int64))


def every_event_examples(events: pd.DataFrame, index: ItemIndex, width: int) -> Examples:
    """Every prefix of each user's whole sequence, held-out events included: what the served model is refit
    on once validation has chosen its epochs (nothing is held out of tonight's model)."""
    ordered = in_event_order(events)
    sequences = ordered.groupby("user_id", sort=True)["item_id"].agg(list)
    return prefix_examples(list(sequences.index), index.known_rows_of_each(list(sequences)), width)


@dataclass(frozen=True)
class ServingHistories:
    examples: Examples  # each user's latest history (sorted by user), no target
    seen: list[np.ndarray]  # every item row each user ever had
    events_per_user: np.ndarray  # all of each user's events, known items or not


def serving_histories(events: pd.DataFrame, index: ItemIndex, width: int) -> ServingHistories:
    """Each user's whole history for tonight's candidates; per user, so any partition of the users by
    user gives the same rows (the Spark path scores users in groups)."""
    ordered = in_event_order(events)
    latest = ordered.groupby("user_id", sort=True)["item_id"].agg(list)
    latest_rows = index.known_rows_of_each(list(latest))
    examples = Examples(latest.index.to_numpy(dtype=object), right_aligned(latest_rows, width),
                        np.full(len(latest), -1, dtype=np.int64))
    return ServingHistories(examples, [np.unique(rows) for rows in latest_rows], latest.map(len).to_numpy())


def training_item_counts(train: Examples, n_items: int) -> np.ndarray:
    """How often each item is a training target or in a training history's last slot: popularity
    from training events only (each training event is the target of exactly one prefix, except
    each user's first, which is only ever history)."""
    counts = np.bincount(train.targets, minlength=n_items).astype(np.float64)
    first_of_user = ~pd.Series(train.users).duplicated().to_numpy()
    firsts = train.histories[first_of_user, -1]
    counts += np.bincount(firsts[firsts >= 0], minlength=n_items)
    return counts
