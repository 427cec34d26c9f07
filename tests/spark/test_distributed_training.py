"""--distributed N: each trainer in 2 CPU processes (TorchDistributor, DDP over gloo) trains what one process
trains on the same global batches, and a distributed TIGER run resumes from rank 0's checkpoint.

Tolerances: the ranks sum each batch's gradient in two halves (and trim padding per half), so floats differ
in the last bits and Adam's normalised steps carry that through a few epochs: the first epoch's mean loss
agrees to 1e-5 relative, later epochs' to 1e-3, weights to 5e-3 absolute. A rank that trained on its half alone (no
gradient averaging) misses the first bound; one that trained the whole batch doubles the targets counted.
Dropout is 0 where runs are compared across process counts (each rank draws its own masks)."""

import functools

import numpy as np
import pytest
import torch

from models.config import SASRecConfig, TigerConfig, TigerTrainConfig, TwinTrainConfig
from models.sasrec import train_sasrec
from models.tiger_training import train_tiger
from models.twin_training import train_twin
from pipelines.training_processes import in_processes
from tests.unit.test_sasrec import WIDTH, _prefixes
from tests.unit.test_tiger import _toy_sequences, catalog
from tests.unit.test_twin import SMALL as SMALL_TWIN

pytestmark = pytest.mark.integration

FIRST_EPOCH_RTOL, LOSS_RTOL, WEIGHT_ATOL = 1e-5, 1e-3, 5e-3


def _assert_same_losses(together: list[dict], alone: list[dict]) -> None:
    losses = np.array([[h["loss"] for h in together], [h["loss"] for h in alone]])
    np.testing.assert_allclose(losses[0, 0], losses[1, 0], rtol=FIRST_EPOCH_RTOL)
    np.testing.assert_allclose(losses[0], losses[1], rtol=LOSS_RTOL)


def _assert_same_weights(one: torch.nn.Module, two: torch.nn.Module) -> None:
    for (name, a), b in zip(one.state_dict().items(), two.state_dict().values(), strict=True):
        torch.testing.assert_close(a.float(), b.float(), atol=WEIGHT_ATOL, rtol=0,
                                   msg=lambda message, name=name: f"{name}: {message}")


@pytest.mark.parametrize("causal", [False, True], ids=["prefixes", "causal-windows"])
def test_tiger_in_two_processes_trains_what_one_process_trains(spark, causal):
    codes, data = catalog(n=20), _toy_sequences()
    config = TigerConfig.debug(codebook_size=4, max_history=5, dropout=0.0, causal_encoder=causal)
    # 84 prefixes (24 windows) in batches of 16 targets: the last batch of an epoch is smaller than the rest
    train = TigerTrainConfig(epochs=3, batch_size=16, warmup_steps=5, eval_users=20, beam_width=5)
    run = functools.partial(train_tiger, codes, data, data, config, train, progress=False)
    alone, alone_state = run()
    together, together_state = in_processes(run, 2)
    assert together_state.epoch == alone_state.epoch == 3
    assert together_state.step == alone_state.step  # the same global batches, not half of them each
    _assert_same_losses(together_state.history, alone_state.history)
    assert [h["examples"] for h in together_state.history] == [h["examples"] for h in alone_state.history]
    _assert_same_weights(alone, together)


def test_a_distributed_tiger_resumes_from_rank_zeros_checkpoint(spark, tmp_path):
    codes, data = catalog(n=20), _toy_sequences()
    config = TigerConfig.debug(codebook_size=4, max_history=5, dropout=0.2)  # each rank's own masks, reseeded per epoch
    train = TigerTrainConfig(epochs=3, batch_size=16, warmup_steps=5, eval_users=20, beam_width=5)

    def run(directory, stop_after_epochs=None):
        return in_processes(functools.partial(train_tiger, codes, data, data, config, train, directory=directory,
                                              stop_after_epochs=stop_after_epochs, progress=False), 2)

    straight, _ = run(tmp_path / "straight")
    _, first = run(tmp_path / "resumed", stop_after_epochs=1)
    assert first.epoch == 1 and (tmp_path / "resumed" / "checkpoint.pt").exists()
    resumed, state = run(tmp_path / "resumed")
    assert state.epoch == 3 and [h["epoch"] for h in state.history] == [1, 2, 3]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_sasrec_in_two_processes_trains_what_one_process_trains(spark):
    n_items, rng = 30, np.random.default_rng(0)
    walks = {f"u{u}": [(int(s) + t) % n_items for t in range(9)] for u, s in enumerate(rng.integers(0, n_items, 45))}
    train = _prefixes({u: w[:-2] for u, w in walks.items()})
    valid = _prefixes({u: w[:-1] for u, w in walks.items()})
    # 45 sequences in batches of 16: the last holds 13
    config = SASRecConfig(max_length=WIDTH, d_model=16, dropout_grid=(0.0,), max_epochs=3, patience=5,
                          batch_size=16, lr=5e-3)
    run = functools.partial(train_sasrec, train, valid, n_items, config)
    (alone, alone_report), (together, together_report) = run(), in_processes(run, 2)
    assert together_report["chosen"]["best_epoch"] == alone_report["chosen"]["best_epoch"]
    assert together_report["chosen"]["valid_ndcg@10"] == pytest.approx(alone_report["chosen"]["valid_ndcg@10"],
                                                                       abs=1e-6)
    _assert_same_weights(alone, together)


def test_twin_in_two_processes_trains_what_one_process_trains(spark):
    rng = np.random.default_rng(0)
    users, keys = 7, 5
    vectors, tokens = rng.normal(size=(20, 8)).astype(np.float32), rng.integers(0, 8, (20, 5))
    items = [rng.integers(0, 20, keys) for _ in range(users)]
    args = (vectors, tokens, np.arange(users).repeat(3), rng.integers(0, 20, 3 * users),
            rng.integers(0, 2, 3 * users).astype(np.float32), items,
            [rng.integers(1, 9, keys) for _ in range(users)], [rng.random((keys, 3)).astype(np.float32)] * users)
    # 21 pairs in batches of 4: the last batch holds one pair, so one rank trains a stand-in with weight 0
    run = functools.partial(train_twin, SMALL_TWIN, TwinTrainConfig(epochs=3, batch_size=4), *args, progress=False)
    (alone, alone_history), (together, together_history) = run(), in_processes(run, 2)
    _assert_same_losses(together_history, alone_history)
    _assert_same_weights(alone, together)


def test_a_process_count_the_machine_cannot_give_is_refused_before_anything_starts():
    with pytest.raises(ValueError, match="processes >= 1"):
        in_processes(lambda: None, 0)
    if torch.cuda.device_count() < 64:
        with pytest.raises(ValueError, match="needs 64 GPUs"):
            in_processes(lambda: None, 64, device="cuda")
