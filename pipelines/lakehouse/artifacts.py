"""Model artifacts: `<root>/<model>/<version>/` with weights and a JSON card.

The card holds the config, the Delta versions of the tables read, the
final metrics, and a SHA-256 of every weights file, so any candidate row can
be traced back to its data and a swapped or corrupted file is refused before
it is loaded (weights load with `torch.load(weights_only=True)` only). A
`LATEST` file per model names the version being served (the one jobs use by
default); it is replaced atomically once a version is complete, or when a gate
or a person promotes one, and `SERVED.jsonl` keeps every change of it (when,
which version, why) so a rollback knows what was served before.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pathlib
from dataclasses import dataclass
from typing import Any

from pipelines.errors import ArtifactIntegrityError

CARD_FILE = "card.json"
LATEST_FILE = "LATEST"
SERVED_LOG = "SERVED.jsonl"
WEIGHTS_SUFFIX = ".pt"
CHECKSUMS = "sha256"  # card key: {file name: hex digest} of the version's weights files


@dataclass(frozen=True)
class ArtifactStore:
    root: str = "artifacts"

    def directory(self, model: str, version: str) -> pathlib.Path:
        return pathlib.Path(self.root) / model / version

    def write_card(self, model: str, version: str, card: dict[str, Any], *, promote: bool = True) -> pathlib.Path:
        directory = self.directory(model, version)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / CARD_FILE
        checksums = {f.name: file_sha256(f) for f in sorted(directory.glob(f"*{WEIGHTS_SUFFIX}"))}
        card = {"model": model, "version": version, **card, CHECKSUMS: checksums}
        _atomic_write(path, json.dumps(card, indent=2, default=str))
        if promote:
            self.promote(model, version, "trained")
        return path

    def promote(self, model: str, version: str, reason: str) -> None:
        """Serve `version` from now on (its weights verified first); the change is logged in SERVED.jsonl."""
        self.verify(model, version)
        previous = self.latest_version(model)
        entry = {"version": version, "previous": previous, "reason": reason,
                 "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        with (pathlib.Path(self.root) / model / SERVED_LOG).open("a") as log:
            log.write(json.dumps(entry) + "\n")
        _atomic_write(pathlib.Path(self.root) / model / LATEST_FILE, version + "\n")

    def served_history(self, model: str) -> list[dict[str, Any]]:
        path = pathlib.Path(self.root) / model / SERVED_LOG
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []

    def rollback(self, model: str) -> str:
        """Serve again the version served before the current one; returns it."""
        current = self.latest_version(model)
        history = self.served_history(model)
        for entry in reversed(history):
            if entry["version"] == current and entry.get("previous"):
                self.promote(model, entry["previous"], f"rollback from {current}")
                return str(entry["previous"])
        raise FileNotFoundError(f"{model}: nothing was served before {current}; no rollback possible")

    def versions(self, model: str) -> list[str]:
        """Every version with a card, oldest first."""
        folder = pathlib.Path(self.root) / model
        cards = sorted(folder.glob(f"*/{CARD_FILE}"), key=lambda p: p.stat().st_mtime) if folder.exists() else []
        return [p.parent.name for p in cards]

    def read_card(self, model: str, version: str) -> dict[str, Any]:
        path = self.directory(model, version) / CARD_FILE
        if not path.exists():
            raise FileNotFoundError(f"no {model} artifact {version!r} at {path}; train it first")
        return dict(json.loads(path.read_text()))

    def latest_version(self, model: str) -> str | None:
        path = pathlib.Path(self.root) / model / LATEST_FILE
        return path.read_text().strip() if path.exists() else None

    def resolve(self, model: str, version: str | None) -> str:
        """`version`, or the latest one, with its weights verified; a clear error when there is none."""
        resolved = version or self.latest_version(model)
        if resolved is None:
            raise FileNotFoundError(f"no {model} model under {pathlib.Path(self.root) / model}; train one first")
        self.verify(model, resolved)
        return resolved

    def verify(self, model: str, version: str) -> dict[str, Any]:
        """The card, after checking every weights file against the SHA-256 it recorded."""
        card = self.read_card(model, version)
        directory = self.directory(model, version)
        recorded = card.get(CHECKSUMS)
        if not recorded:
            raise ArtifactIntegrityError(f"{model} {version}: {directory / CARD_FILE} records no weights checksum "
                                         "(written by an older tigertwin); train the model again")
        for name, expected in recorded.items():
            path = directory / name
            actual = file_sha256(path) if path.exists() else "missing"
            if actual != expected:
                raise ArtifactIntegrityError(f"{model} {version}: {path} does not match the SHA-256 in its card "
                                             f"({actual[:12]} vs {expected[:12]}); refusing to load it, retrain")
        return card


def file_sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_write(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
