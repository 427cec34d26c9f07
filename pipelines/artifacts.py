"""Model artifacts: `<root>/<model>/<version>/` with weights and a JSON card.

The card holds the config, the Delta versions of the tables read, and the
final metrics, so any candidate row can be traced back to its data. A
`LATEST` file per model names the version the next job uses by default;
it is replaced atomically once a version is complete.
"""

from __future__ import annotations

import json
import os
import pathlib
from dataclasses import dataclass
from typing import Any

CARD_FILE = "card.json"
LATEST_FILE = "LATEST"


@dataclass(frozen=True)
class ArtifactStore:
    root: str = "artifacts"

    def directory(self, model: str, version: str) -> pathlib.Path:
        return pathlib.Path(self.root) / model / version

    def write_card(self, model: str, version: str, card: dict[str, Any], *, promote: bool = True) -> pathlib.Path:
        directory = self.directory(model, version)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / CARD_FILE
        _atomic_write(path, json.dumps({"model": model, "version": version, **card}, indent=2, default=str))
        if promote:
            _atomic_write(pathlib.Path(self.root) / model / LATEST_FILE, version + "\n")
        return path

    def read_card(self, model: str, version: str) -> dict[str, Any]:
        path = self.directory(model, version) / CARD_FILE
        if not path.exists():
            raise FileNotFoundError(f"no {model} artifact {version!r} at {path}; train it first")
        return dict(json.loads(path.read_text()))

    def latest_version(self, model: str) -> str | None:
        path = pathlib.Path(self.root) / model / LATEST_FILE
        return path.read_text().strip() if path.exists() else None

    def resolve(self, model: str, version: str | None) -> str:
        """`version`, or the latest one; a clear error when there is none."""
        resolved = version or self.latest_version(model)
        if resolved is None:
            raise FileNotFoundError(f"no {model} model under {pathlib.Path(self.root) / model}; train one first")
        self.read_card(model, resolved)
        return resolved


def _atomic_write(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
