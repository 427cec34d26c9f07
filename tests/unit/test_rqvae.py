import numpy as np
import pytest
import torch

from models.rqvae import (
    RQVAE,
    RQVAEConfig,
    RQVAETrainConfig,
    effective_batch_size,
    encode_codes,
    kmeans_init,
    load_rqvae,
    reseed_dead_codes,
    save_rqvae,
    train_rqvae,
)

SMALL = RQVAEConfig(input_dim=16, hidden_dims=(32, 16), latent_dim=8, levels=3, codebook_size=16)


def clustered(n=600, d=16, centres=40, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, d))
    return (c[rng.integers(0, centres, n)] + 0.2 * rng.normal(size=(n, d))).astype(np.float32)


def test_kmeans_init_puts_codes_on_the_data():
    torch.manual_seed(0)
    model = RQVAE(SMALL)
    x = torch.as_tensor(clustered())
    before = model.quantize(model.encoder(x)).codes[:, 0].unique().numel()
    kmeans_init(model, x, iters=10, seed=0)
    q = model.quantize(model.encoder(x))
    assert before < SMALL.codebook_size  # random codebooks: most codes far from every latent
    for level in range(SMALL.levels):
        assert q.codes[:, level].unique().numel() == SMALL.codebook_size
    # k-means centroids: the quantization error is far smaller than with the random codebooks
    assert float(q.commitment_loss) < float(RQVAE(SMALL).quantize(model.encoder(x)).commitment_loss)


def test_dead_codes_are_reseeded_onto_live_residuals():
    torch.manual_seed(0)
    model = RQVAE(SMALL)
    x = torch.as_tensor(clustered())
    kmeans_init(model, x, iters=10, seed=0)
    model.codebooks.data[0, :4] = 1e6  # four codes nobody can choose
    usage = torch.stack([torch.bincount(c, minlength=16) for c in model.quantize(model.encoder(x)).codes.T])
    assert (usage[0, :4] == 0).all()
    moved = reseed_dead_codes(model, usage, x, torch.Generator().manual_seed(0))
    assert moved >= 4
    assert model.codebooks.data[0, :4].abs().max() < 1e3
    assert model.quantize(model.encoder(x)).codes[:, 0].unique().numel() > 12


def test_training_keeps_codebooks_alive_and_ids_mostly_unique():
    x = clustered(n=1500)
    model, state = train_rqvae(x, SMALL, RQVAETrainConfig(epochs=30, batch_size=256, checkpoint_every=0),
                               progress=False)
    codes = encode_codes(model, x, normalize=True)
    assert codes.shape == (1500, 3) and codes.dtype == np.int32
    assert state.history[-1]["loss"] < state.history[0]["loss"]
    for level in range(3):
        assert len(np.unique(codes[:, level])) >= 15  # of 16


def test_resume_from_checkpoint_equals_an_uninterrupted_run(tmp_path):
    x = clustered()
    train = RQVAETrainConfig(epochs=6, batch_size=128, checkpoint_every=1, seed=3)
    straight, _ = train_rqvae(x, SMALL, train, checkpoint=tmp_path / "a.pt", progress=False)
    _, first = train_rqvae(x, SMALL, train, checkpoint=tmp_path / "b.pt", stop_after_epochs=3, progress=False)
    assert first.epoch == 3
    resumed, state = train_rqvae(x, SMALL, train, checkpoint=tmp_path / "b.pt", progress=False)
    assert state.epoch == 6 and len(state.history) == 6
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    np.testing.assert_array_equal(encode_codes(straight, x, True), encode_codes(resumed, x, True))


def test_same_seed_same_model_and_save_load_round_trip(tmp_path):
    x = clustered(n=300)
    train = RQVAETrainConfig(epochs=2, batch_size=64, checkpoint_every=0)
    a, _ = train_rqvae(x, SMALL, train, progress=False)
    b, _ = train_rqvae(x, SMALL, train, progress=False)
    np.testing.assert_array_equal(encode_codes(a, x, True), encode_codes(b, x, True))
    save_rqvae(a, train, tmp_path / "v1")
    loaded, loaded_train = load_rqvae(tmp_path / "v1", device="cpu")
    assert loaded.config == SMALL and loaded_train == train
    np.testing.assert_array_equal(encode_codes(a, x, True), encode_codes(loaded, x, True))


@pytest.mark.parametrize("n", [1, 5])
def test_tiny_inputs_encode(n):
    model = RQVAE(SMALL)
    assert encode_codes(model, clustered(n=n), True).shape == (n, 3)


def test_catalog_smaller_than_a_codebook_trains():
    x = clustered(n=10)
    model, _ = train_rqvae(x, SMALL, RQVAETrainConfig(epochs=2, batch_size=4, checkpoint_every=0), progress=False)
    assert encode_codes(model, x, True).shape == (10, 3)


def test_small_catalogs_get_batches_that_make_an_epoch_several_steps():
    train = RQVAETrainConfig(batch_size=1024, min_steps_per_epoch=8)
    assert effective_batch_size(1682, train) == 211  # ml-100k: 8 steps instead of 2
    assert effective_batch_size(12_068, train) == 1024  # Beauty keeps the configured batch
    assert effective_batch_size(3, train) == 1
