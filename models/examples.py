"""The one example type every sequence model reads (numpy only): who, what they had, what came next."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Examples:
    users: np.ndarray  # [E] str user ids
    histories: np.ndarray  # [E, max_history] item rows, right-aligned, -1 = padding
    targets: np.ndarray  # [E] item rows; -1 when there is no target (serving)

    def __len__(self) -> int:
        return len(self.users)

    def take(self, rows: np.ndarray) -> Examples:
        return Examples(self.users[rows], self.histories[rows], self.targets[rows])

    def items_never_seen(self, n_items: int) -> np.ndarray:
        """Item rows 0..n_items-1 that no history and no target holds (cold items, for a training set)."""
        seen = np.zeros(n_items + 1, dtype=bool)  # the last slot takes the -1 padding
        seen[self.histories.ravel()] = True
        seen[self.targets] = True
        return np.flatnonzero(~seen[:n_items])


@dataclass(frozen=True)
class Windows:
    """Training examples for the causal encoder: runs of consecutive items, each of whose next items is a target.

    Window e holds items[e] (right-aligned, -1 = padding); the target after position w is items[e, w + 1],
    trained where trained[e, w]. Every target of the prefix examples it came from is trained exactly once.
    """

    users: np.ndarray  # [E] str user ids
    items: np.ndarray  # [E, width + 1] item rows, right-aligned, -1 = padding
    trained: np.ndarray  # [E, width] bool

    def __len__(self) -> int:
        return len(self.users)

    @property
    def targets(self) -> int:
        return int(self.trained.sum())


def windows_of_prefixes(prefixes: Examples, width: int) -> Windows:
    """The windows that train the same targets as `prefixes` (every prefix of each user's sequence, users
    contiguous and in order, as `build_sequences` writes them), `width` items of context at most.

    Windows are cut from the end of each sequence backwards, so every window but a user's earliest is full
    and the latest targets (those nearest to tonight's) read the whole `width` items, as serving does."""
    if not len(prefixes):
        return Windows(np.zeros(0, dtype=object), np.zeros((0, width + 1), np.int64), np.zeros((0, width), bool))
    users, rows, trained = [], [], []
    new_user = np.r_[True, prefixes.users[1:] != prefixes.users[:-1]]
    follows = prefixes.histories[1:, -1] == prefixes.targets[:-1]  # each prefix ends with the previous target
    if not (follows | new_user[1:]).all():
        raise ValueError("windows need every prefix of contiguous per-user sequences, in order: prefix "
                         f"{int(np.flatnonzero(~(follows | new_user[1:]))[0]) + 1} does not follow the one before")
    starts = np.flatnonzero(new_user)
    ends = np.r_[starts[1:], len(prefixes)]
    for start, end in zip(starts, ends, strict=True):
        first = prefixes.histories[start]
        sequence = np.concatenate([first[first >= 0], prefixes.targets[start:end]])
        first_target = len(sequence) - (end - start)  # positions before it are context only
        for last in range(len(sequence) - 1, first_target - 1, -width):
            begin = max(0, last - width)
            window = np.full(width + 1, -1, dtype=np.int64)
            window[width + 1 - (last + 1 - begin):] = sequence[begin:last + 1]
            target_positions = np.arange(last - width + 1, last + 1)  # sequence positions of window targets
            users.append(prefixes.users[start])
            rows.append(window)
            trained.append(target_positions >= max(first_target, 1))  # each target once: windows step by width
    windows = Windows(np.asarray(users, dtype=object), np.stack(rows), np.stack(trained))
    if windows.targets != len(prefixes):
        raise ValueError(f"{len(prefixes)} prefix examples gave {windows.targets} window targets: the prefixes "
                         "are not every prefix of contiguous per-user sequences")  # a user's first target missing
    return windows


def length_bucketed_batches(lengths: np.ndarray, targets: np.ndarray, batch_targets: int,
                            rng: np.random.Generator, chunk_rows: int) -> list[np.ndarray]:
    """Row batches of about `batch_targets` targets each, rows of similar length together: shuffled, sorted
    by length within chunks of `chunk_rows`, cut where the running target count passes a multiple of
    `batch_targets`, then the batches shuffled. A batch is trimmed to its longest row, so short windows
    (most users of a sparse catalog) no longer pay for one long window beside them."""
    batches: list[np.ndarray] = []
    order = rng.permutation(len(lengths))
    for start in range(0, len(order), chunk_rows):
        chunk = order[start:start + chunk_rows]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batch_of = (np.cumsum(targets[chunk]) - 1) // batch_targets
        batches += np.split(chunk, np.flatnonzero(np.diff(batch_of)) + 1)
    return [batches[i] for i in rng.permutation(len(batches))]
