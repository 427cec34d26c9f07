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
