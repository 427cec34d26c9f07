"""Model files never run code, and a weights file that is not the one its card recorded is refused."""

import os
import pathlib
import pickle

import pytest
import torch

from models.config import TigerConfig
from models.rqvae import RQVAE, RQVAETrainConfig, load_rqvae, save_rqvae
from models.tiger import Tiger
from models.tiger_training import load_weights
from pipelines.errors import ArtifactIntegrityError
from pipelines.lakehouse.artifacts import ArtifactStore
from tests.unit.test_rqvae import SMALL

MARKER = "tigertwin-payload-ran"


class Payload:
    """What a crafted checkpoint carries: unpickling it would run os.system."""

    def __reduce__(self):
        return os.system, (f"touch {MARKER}",)


def _crafted(path: pathlib.Path) -> pathlib.Path:
    torch.save({"model": {}, "extra": Payload()}, path)  # a valid torch file with a code payload
    return path


def test_crafted_checkpoints_do_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(pickle.UnpicklingError):
        load_weights(TigerConfig(), _crafted(tmp_path / "best.pt"), device="cpu")
    directory = tmp_path / "rqvae"
    save_rqvae(RQVAE(SMALL), RQVAETrainConfig(), directory)
    _crafted(directory / "rqvae.pt")
    with pytest.raises(pickle.UnpicklingError):
        load_rqvae(directory, device="cpu")
    assert not (tmp_path / MARKER).exists()


def test_card_records_sha256_and_loading_checks_it(tmp_path):
    store = ArtifactStore(root=str(tmp_path))
    directory = store.directory("tiger", "v1")
    directory.mkdir(parents=True)
    torch.save({"model": Tiger(TigerConfig()).state_dict()}, directory / "best.pt")
    card = store.verify("tiger", pathlib.Path(store.write_card("tiger", "v1", {"weights": "best.pt"})).parent.name)
    assert set(card["sha256"]) == {"best.pt"} and len(card["sha256"]["best.pt"]) == 64
    assert store.resolve("tiger", None) == "v1"
    _crafted(directory / "best.pt")  # swapped after the card was written
    with pytest.raises(ArtifactIntegrityError, match="does not match the SHA-256 in its card"):
        store.resolve("tiger", None)
    (directory / "best.pt").unlink()
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        store.resolve("tiger", "v1")


def test_a_card_without_checksums_is_refused(tmp_path):
    store = ArtifactStore(root=str(tmp_path))
    directory = store.directory("twin", "old")
    directory.mkdir(parents=True)
    (directory / "card.json").write_text('{"model": "twin", "version": "old", "weights": "twin.pt"}')
    with pytest.raises(ArtifactIntegrityError, match="records no weights checksum"):
        store.resolve("twin", "old")
