"""Where the benchmarks find the public datasets (docs/datasets.md says how to get them).

TIGERTWIN_DATA_DIR names the folder; the default is `../shared/data` beside the repository. It holds
`ml-100k/` (MovieLens 100K as GroupLens ships it) and `amazon-beauty/user_sequence.txt` (Amazon 2014
Beauty 5-core sequences, one user per line: the user id, then the item ids in time order).
"""

from __future__ import annotations

import os
import pathlib

ENV_DATA_DIR = "TIGERTWIN_DATA_DIR"
DATA_DIR = pathlib.Path(os.environ.get(ENV_DATA_DIR) or pathlib.Path(__file__).resolve().parents[2] / "shared" / "data")
