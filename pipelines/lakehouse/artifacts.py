"""Model artifacts: `<root>/<model>/<version>/` with weights and a JSON card.

The card holds the config, the Delta versions of the tables read, the
final metrics, and a SHA-256 of every weights file, so any candidate row can
be traced back to its data and a swapped or corrupted file is refused before
it is loaded (weights load with `torch.load(weights_only=True)` only). A
`LATEST` file per model names the version being served (the one jobs use by
default); it is replaced atomically once a version is complete, or when a gate
or a person promotes one, and `SERVED.jsonl` keeps every change of it (when,
which version, why) so a rollback knows what was served before.

The root may be an object store (`s3://bucket/models`; credentials and endpoint
from the standard AWS_* variables). Jobs then work in a local copy of each
version they touch (`directory()`: under TIGERTWIN_ARTIFACT_CACHE, default the
temp dir) that is filled from the store with the files it lacks; `write_card`
uploads the version's files with the card last, so a card in the store always
names weights that are there. Any process (a Spark executor on another
machine) loads a model from the store itself, checked against the card.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import pathlib
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any

from pipelines.errors import ArtifactIntegrityError

CARD_FILE = "card.json"
LATEST_FILE = "LATEST"
SERVED_LOG = "SERVED.jsonl"
WEIGHTS_SUFFIX = ".pt"
CHECKSUMS = "sha256"  # card key: {file name: hex digest} of the version's weights files
ENV_ARTIFACT_CACHE = "TIGERTWIN_ARTIFACT_CACHE"  # local copies of an object-store root's versions


@dataclass(frozen=True)
class ArtifactStore:
    root: str = "artifacts"
    # object-store credentials and endpoint beyond the AWS_* environment (see `for_executors`)
    storage_options: tuple[tuple[str, str], ...] = ()

    def for_executors(self) -> ArtifactStore:
        """With the driver's AWS_* environment folded into the storage options, for executors that may run
        where those variables are unset (a local root is returned as it is)."""
        if not self.is_remote:
            return self
        from pipelines.lakehouse.delta.files import object_store_options

        return dataclasses.replace(self, storage_options=tuple(sorted(
            object_store_options(dict(self.storage_options)).items())))

    @property
    def is_remote(self) -> bool:
        return "://" in self.root and not self.root.startswith("file://")

    def _local_root(self) -> pathlib.Path:
        if not self.is_remote:
            return pathlib.Path(self.root.removeprefix("file://"))
        base = os.environ.get(ENV_ARTIFACT_CACHE) or os.path.join(tempfile.gettempdir(), "tigertwin-artifacts")
        return pathlib.Path(base) / hashlib.sha256(self.root.encode()).hexdigest()[:16]

    def _store(self) -> _ObjectStore:
        from pipelines.lakehouse.delta.files import filesystem_for

        fs, path = filesystem_for(self.root, dict(self.storage_options) or None)
        return _ObjectStore(fs, path.rstrip("/"))

    def directory(self, model: str, version: str) -> pathlib.Path:
        """The version's folder on this machine (for an object-store root: a local copy, given every file
        the store has and the copy lacks)."""
        path = self._local_root() / model / version
        if self.is_remote:
            self._store().download(f"{model}/{version}", path)
        return path

    def write_card(self, model: str, version: str, card: dict[str, Any], *, promote: bool = True) -> pathlib.Path:
        directory = self.directory(model, version)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / CARD_FILE
        checksums = {f.name: file_sha256(f) for f in sorted(directory.glob(f"*{WEIGHTS_SUFFIX}"))}
        card = {"model": model, "version": version, **card, CHECKSUMS: checksums}
        _atomic_write(path, json.dumps(card, indent=2, default=str))
        if self.is_remote:  # every other file first: a card in the store names files that are there
            self._store().upload(directory, f"{model}/{version}", last=CARD_FILE)
        if promote:
            self.promote(model, version, "trained")
        return path

    def promote(self, model: str, version: str, reason: str) -> None:
        """Serve `version` from now on (its weights verified first); the change is logged in SERVED.jsonl."""
        self.verify(model, version)
        previous = self.latest_version(model)
        entry = {"version": version, "previous": previous, "reason": reason,
                 "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        if self.is_remote:  # objects cannot be appended to: the log is rewritten whole
            store = self._store()
            store.write_text(f"{model}/{SERVED_LOG}", (store.read_text(f"{model}/{SERVED_LOG}") or "")
                             + json.dumps(entry) + "\n")
            store.write_text(f"{model}/{LATEST_FILE}", version + "\n")
            return
        with (self._local_root() / model / SERVED_LOG).open("a") as log:
            log.write(json.dumps(entry) + "\n")
        _atomic_write(self._local_root() / model / LATEST_FILE, version + "\n")

    def _read_text(self, relative: str) -> str | None:
        if self.is_remote:
            return self._store().read_text(relative)
        path = self._local_root() / relative
        return path.read_text() if path.exists() else None

    def served_history(self, model: str) -> list[dict[str, Any]]:
        text = self._read_text(f"{model}/{SERVED_LOG}") or ""
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def rollback(self, model: str) -> str:
        """Serve again the version served before the current one; returns it."""
        current = self.latest_version(model)
        history = self.served_history(model)
        for entry in reversed(history):
            if entry["version"] == current and entry.get("previous"):
                self.promote(model, entry["previous"], f"rollback from {current}")
                return str(entry["previous"])
        raise FileNotFoundError(f"{model}: nothing was served before {current}; no rollback possible")

    def models(self) -> list[str]:
        """Every model with at least one folder in the store."""
        if self.is_remote:
            return self._store().folders("")
        root = self._local_root()
        return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []

    def versions(self, model: str) -> list[str]:
        """Every version with a card, oldest first."""
        if self.is_remote:
            return self._store().cards(model, CARD_FILE)
        folder = self._local_root() / model
        cards = sorted(folder.glob(f"*/{CARD_FILE}"), key=lambda p: p.stat().st_mtime) if folder.exists() else []
        return [p.parent.name for p in cards]

    def read_card(self, model: str, version: str) -> dict[str, Any]:
        text = self._read_text(f"{model}/{version}/{CARD_FILE}")
        if text is None:
            raise FileNotFoundError(f"no {model} artifact {version!r} at {self.root}/{model}/{version}/{CARD_FILE}; "
                                    "train it first")
        return dict(json.loads(text))

    def latest_version(self, model: str) -> str | None:
        text = self._read_text(f"{model}/{LATEST_FILE}")
        return text.strip() if text else None

    def resolve(self, model: str, version: str | None) -> str:
        """`version`, or the latest one, with its weights verified; a clear error when there is none."""
        resolved = version or self.latest_version(model)
        if resolved is None:
            raise FileNotFoundError(f"no {model} model under {self.root}/{model}; train one first")
        self.verify(model, resolved)
        return resolved

    def verify(self, model: str, version: str) -> dict[str, Any]:
        """The card, after checking every weights file against the SHA-256 it recorded (for an object-store
        root, in this machine's copy, fetched again once when it differs: the version may have been
        rewritten elsewhere)."""
        card = self.read_card(model, version)
        directory = self.directory(model, version)
        recorded = card.get(CHECKSUMS)
        if not recorded:
            raise ArtifactIntegrityError(f"{model} {version}: {directory / CARD_FILE} records no weights checksum "
                                         "(written by an older tigertwin); train the model again")
        for name, expected in recorded.items():
            path = directory / name
            actual = file_sha256(path) if path.exists() else "missing"
            if actual != expected and self.is_remote:
                path.unlink(missing_ok=True)
                self._store().download(f"{model}/{version}", directory)
                actual = file_sha256(path) if path.exists() else "missing"
            if actual != expected:
                raise ArtifactIntegrityError(f"{model} {version}: {path} does not match the SHA-256 in its card "
                                             f"({actual[:12]} vs {expected[:12]}); refusing to load it, retrain")
        return card


@dataclass(frozen=True)
class _ObjectStore:
    """The few object-store operations the artifact store needs, through a pyarrow filesystem."""

    fs: Any  # pyarrow.fs.FileSystem
    base: str  # bucket/prefix

    def _path(self, relative: str) -> str:
        return f"{self.base}/{relative}".rstrip("/")

    def read_text(self, relative: str) -> str | None:
        import pyarrow.fs as pafs

        path = self._path(relative)
        if self.fs.get_file_info(path).type != pafs.FileType.File:
            return None
        with self.fs.open_input_stream(path) as stream:
            return bytes(stream.read()).decode()

    def write_text(self, relative: str, text: str) -> None:
        with self.fs.open_output_stream(self._path(relative)) as stream:  # one PUT: readers see all or none
            stream.write(text.encode())

    def _listing(self, relative: str, recursive: bool) -> list:
        import pyarrow.fs as pafs

        return self.fs.get_file_info(pafs.FileSelector(self._path(relative), allow_not_found=True,
                                                       recursive=recursive))

    def folders(self, relative: str) -> list[str]:
        import pyarrow.fs as pafs

        return sorted(i.base_name for i in self._listing(relative, False) if i.type == pafs.FileType.Directory)

    def cards(self, model: str, card_file: str) -> list[str]:
        """Versions of `model` with a card, oldest card first."""
        found = [i for i in self._listing(model, True) if i.base_name == card_file
                 and i.path.count("/") == self._path(model).count("/") + 2]
        return [i.path.split("/")[-2] for i in sorted(found, key=lambda i: i.mtime_ns or 0)]

    def download(self, relative: str, folder: pathlib.Path) -> None:
        """Every file under `relative` that `folder` lacks (a file being written here is never replaced)."""
        import pyarrow.fs as pafs

        prefix = self._path(relative) + "/"
        for info in self._listing(relative, True):
            if info.type != pafs.FileType.File:
                continue
            target = folder / info.path.removeprefix(prefix)
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            # several workers of one machine may fetch the same version at once: each into its own file
            tmp = target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.download")
            pafs.copy_files(info.path, str(tmp), source_filesystem=self.fs,
                            destination_filesystem=pafs.LocalFileSystem())
            os.replace(tmp, target)

    def upload(self, folder: pathlib.Path, relative: str, last: str) -> None:
        import pyarrow.fs as pafs

        files = sorted((f for f in folder.rglob("*") if f.is_file() and not f.name.startswith(".")),
                       key=lambda f: f.name == last)
        for file in files:
            pafs.copy_files(str(file), self._path(f"{relative}/{file.relative_to(folder).as_posix()}"),
                            source_filesystem=pafs.LocalFileSystem(), destination_filesystem=self.fs)


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
