import numpy as np
import pytest
import torch

from models.beam_search import SemanticIdTrie, beam_search, exclusion_mask, score_all_items
from models.config import TigerConfig, TigerTrainConfig
from models.examples import Examples, length_bucketed_batches, windows_of_prefixes
from models.tiger import Tiger, encoder_tokens
from models.tiger_training import (
    BEST_FILE,
    CHECKPOINT_FILE,
    WeightAverage,
    epochs_within_budget,
    recommend,
    train_tiger,
)

SMALL = TigerConfig.debug(codebook_size=4, max_history=5)


def catalog(n=40, seed=0):
    rng = np.random.default_rng(seed)
    every = np.array(np.meshgrid(*[range(4)] * 4)).reshape(4, -1).T
    return every[rng.choice(len(every), n, replace=False)]


def test_trie_rejects_duplicate_ids():
    with pytest.raises(ValueError, match="not unique"):
        SemanticIdTrie(np.array([[1, 2, 3, 0], [1, 2, 3, 0]]), 4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_search_matches_brute_force_and_returns_valid_distinct_items(seed):
    torch.manual_seed(seed)
    codes = catalog(seed=seed)
    model = Tiger(SMALL).eval()
    histories = torch.as_tensor(np.random.default_rng(seed).integers(-1, 40, size=(6, 5)))
    histories = torch.sort(histories, dim=1).values  # right-aligned: padding first
    tokens = encoder_tokens(SMALL, torch.as_tensor(codes), histories, torch.arange(6))
    exact = score_all_items(model, tokens, torch.as_tensor(codes)).topk(10)
    found = beam_search(model, tokens, SemanticIdTrie(codes, 4), top_k=10, beam_width=4**4)
    assert torch.equal(found.items, exact.indices)
    assert torch.allclose(found.scores, exact.values, atol=1e-5)
    narrow = beam_search(model, tokens, SemanticIdTrie(codes, 4), top_k=10)
    for row in narrow.items:
        assert len(set(row.tolist())) == 10 and (row >= 0).all() and (row < 40).all()


@pytest.mark.parametrize("causal", [False, True])
def test_a_users_recommendations_do_not_depend_on_who_shares_the_batch(causal):
    # a batch is trimmed to its longest history: nothing of one user may move with the others' lengths
    torch.manual_seed(0)
    config = TigerConfig.debug(codebook_size=4, max_history=5, causal_encoder=causal)
    model, codes = Tiger(config).eval(), catalog()
    rng = np.random.default_rng(0)
    histories = np.full((8, 5), -1)
    for row, length in enumerate(rng.integers(1, 6, size=8)):
        histories[row, 5 - length:] = rng.integers(0, 40, size=length)
    examples = Examples(np.array([f"u{u}" for u in range(8)], dtype=object), histories, np.zeros(8, dtype=int))
    trie = SemanticIdTrie(codes, 4)
    together = recommend(model, torch.as_tensor(codes), trie, examples, top_k=5, beam_width=16, batch_size=8)
    alone = recommend(model, torch.as_tensor(codes), trie, examples, top_k=5, beam_width=16, batch_size=1)
    assert torch.equal(together.items, alone.items)
    torch.testing.assert_close(together.scores, alone.scores, rtol=0, atol=1e-5)


def test_history_items_can_be_excluded():
    torch.manual_seed(0)
    codes = catalog()
    model = Tiger(SMALL).eval()
    histories = torch.as_tensor([[-1, 3, 7, 9, 11], [1, 2, 4, 5, 6]])
    tokens = encoder_tokens(SMALL, torch.as_tensor(codes), histories, torch.arange(2))
    out = beam_search(model, tokens, SemanticIdTrie(codes, 4), top_k=35,
                      exclude=exclusion_mask(histories, 40, torch.device("cpu")))
    for row, history in zip(out.items, histories, strict=True):
        kept = set(row[row >= 0].tolist())
        assert not kept & set(history[history >= 0].tolist())
        assert len(kept) == 35


def test_fewer_items_than_k_pads_with_minus_one():
    codes = catalog(n=3)
    model = Tiger(SMALL).eval()
    tokens = encoder_tokens(SMALL, torch.as_tensor(codes), torch.as_tensor([[-1, -1, -1, -1, 0]]), torch.zeros(1, dtype=torch.long))
    out = beam_search(model, tokens, SemanticIdTrie(codes, 4), top_k=5)
    assert out.items[0, :3].sort().values.tolist() == [0, 1, 2] and (out.items[0, 3:] == -1).all()


def _toy_sequences(codes_n=20, users=12, length=8):
    """Each user walks the catalog with a fixed stride: the next item is a function of the last."""
    users_, histories, targets = [], [], []
    for u in range(users):
        walk = [(u + 3 * t) % codes_n for t in range(length)]
        for t in range(1, length):
            h = walk[max(0, t - 5):t]
            users_.append(f"u{u}")
            histories.append([-1] * (5 - len(h)) + h)
            targets.append(walk[t])
    return Examples(np.array(users_, dtype=object), np.array(histories), np.array(targets))


def test_debug_model_overfits_a_tiny_set():
    codes = catalog(n=20)
    data = _toy_sequences()
    train = TigerTrainConfig(epochs=40, batch_size=32, lr=3e-3, warmup_steps=10, eval_users=1000, beam_width=10,
                             patience=None)  # no early stop: this checks that it can fit the set
    model, state = train_tiger(codes, data, data, SMALL, train, progress=False)
    assert state.best_valid > 0.9
    top1 = recommend(model, torch.as_tensor(codes), SemanticIdTrie(codes, 4), data, top_k=1, beam_width=10,
                     exclude_history=False).items[:, 0].numpy()
    assert (top1 == data.targets).mean() > 0.9


@pytest.mark.parametrize("ema_decay", [None, 0.9])
def test_resume_equals_uninterrupted(tmp_path, ema_decay):
    codes = catalog(n=20)
    data = _toy_sequences()
    config = TigerConfig.debug(codebook_size=4, max_history=5, dropout=0.2)
    train = TigerTrainConfig(epochs=3, batch_size=16, warmup_steps=5, eval_users=20, beam_width=5, ema_decay=ema_decay)
    straight, _ = train_tiger(codes, data, data, config, train, directory=tmp_path / "a", progress=False)
    _, first = train_tiger(codes, data, data, config, train, directory=tmp_path / "b", stop_after_epochs=1,
                           progress=False)
    assert first.epoch == 1
    resumed, state = train_tiger(codes, data, data, config, train, directory=tmp_path / "b", progress=False)
    assert state.epoch == 3 and len(state.history) == 3
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_budget_plan_counts_the_epochs_that_fit():
    assert epochs_within_budget(3300, 800, 760, done=1, planned=50) == 4
    assert epochs_within_budget(3300, 800, 760, done=1, planned=3) == 3
    assert epochs_within_budget(600, 800, 760, done=1, planned=50) == 1  # already over: stop here


def test_the_budget_plan_follows_the_latest_epochs_speed():
    """The first epoch is the slowest: a plan fixed after it would anneal and stop early."""
    from types import SimpleNamespace

    from models.tiger_training import TigerState, WarmupCosine, _plan_to_budget

    run = SimpleNamespace(state=TigerState(epoch=1), schedule=WarmupCosine(10, 5000), steps_per_epoch=100)
    train = TigerTrainConfig(epochs=50, max_minutes=10)
    _plan_to_budget(run, train, elapsed=100, epoch_seconds=100)  # 500 s left at 100 s an epoch
    assert run.state.planned_epochs == 6 and run.schedule.total_steps == 600
    run.state.epoch = 2
    _plan_to_budget(run, train, elapsed=150, epoch_seconds=50)  # faster now: 450 s left at 50 s an epoch
    assert run.state.planned_epochs == 11 and run.schedule.total_steps == 1100
    _plan_to_budget(run, TigerTrainConfig(epochs=50), elapsed=150, epoch_seconds=50)  # no budget: no plan
    assert run.state.planned_epochs == 11


def test_a_spent_budget_anneals_and_stops_and_a_resume_keeps_the_plan(tmp_path):
    codes = catalog(n=20)
    data = _toy_sequences()
    config = TigerConfig.debug(codebook_size=4, max_history=5)
    train = TigerTrainConfig(epochs=5, batch_size=16, warmup_steps=2, eval_users=20, beam_width=5,
                             max_minutes=1e-9)
    _, state = train_tiger(codes, data, data, config, train, directory=tmp_path, progress=False)
    assert state.epoch == 1 and state.planned_epochs == 1
    assert state.history[0]["examples"] == 16  # the budget also cuts the epoch: one batch, then validation
    saved = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=False)
    steps_per_epoch = -(-len(data.targets) // 16)
    assert saved["scheduler"]["lr_lambdas"][0]["total_steps"] == steps_per_epoch  # lr reached 0 at the stop
    _, resumed = train_tiger(codes, data, data, config, train, directory=tmp_path, progress=False)
    assert resumed.epoch == 1


def test_patience_ends_a_run_that_stopped_improving():
    codes = catalog(n=20)
    data = _toy_sequences()
    config = TigerConfig.debug(codebook_size=4, max_history=5)
    # lr 0: the model never changes, so validation Recall@10 never beats epoch 1
    train = TigerTrainConfig(epochs=10, batch_size=16, lr=0.0, warmup_steps=1, beam_width=5, patience=2)
    _, state = train_tiger(codes, data, data, config, train, progress=False)
    assert state.best_epoch == 1 and state.epoch == 3
    assert all("valid_recall@10_se" in e and "valid_ndcg@10" in e for e in state.history)


CAUSAL = TigerConfig.debug(codebook_size=4, max_history=5, causal_encoder=True)


def test_windows_train_every_prefix_target_once_with_the_context_before_it():
    data = _toy_sequences(length=13)  # 12 targets per user: windows of 5 give 5 + 5 + 2
    windows = windows_of_prefixes(data, width=5)
    assert windows.targets == len(data) and len(windows) == 12 * 3
    trained = []
    for user, items, mask in zip(windows.users, windows.items, windows.trained, strict=True):
        for w in np.flatnonzero(mask):
            context = items[: w + 1]
            trained.append((user, int(items[w + 1]), context[context >= 0]))
    assert sorted((u, t) for u, t, _ in trained) == sorted(zip(data.users, data.targets.tolist(), strict=True))
    for user, target, context in trained:  # a window target's context is the end of its prefix's history
        history = data.histories[np.flatnonzero((data.users == user) & (data.targets == target))[0]]
        assert len(context) and np.array_equal(history[history >= 0][-len(context):], context)
    first_of_user = np.r_[True, windows.users[1:] != windows.users[:-1]]
    assert (windows.items[first_of_user] >= 0).all()  # each user's latest targets read all 5 items, as serving does
    assert windows.trained[first_of_user].all()


def test_windows_refuse_prefixes_that_are_not_whole_sequences():
    data = _toy_sequences()
    with pytest.raises(ValueError, match="every prefix"):
        windows_of_prefixes(data.take(np.array([0, 1, 3])), width=5)  # a prefix left out


def test_a_window_pass_scores_each_target_as_its_own_prefix_would():
    torch.manual_seed(0)
    codes = torch.as_tensor(catalog())
    model = Tiger(CAUSAL).eval()
    windows = torch.tensor([[-1, 3, 7, 9, 2, 5], [4, 8, 1, 0, 6, 11]])
    users = torch.tensor([3, 9])
    tokens = encoder_tokens(CAUSAL, codes, windows[:, :-1], users, trim_padding=False)
    together = model.forward_windows(tokens, codes[windows[:, 1:].clamp(min=0)])
    for row in range(2):
        for w in range(1 if windows[row, 0] < 0 else 0, 5):
            history = torch.full((1, 5), -1)
            history[0, 4 - w:] = windows[row, : w + 1]
            alone = model(encoder_tokens(CAUSAL, codes, history, users[row:row + 1]), codes[windows[row, w + 1]][None])
            assert torch.allclose(alone[0], together[row, w], atol=1e-5), (row, w)


def test_a_bidirectional_encoder_refuses_window_training():
    model = Tiger(SMALL)
    with pytest.raises(ValueError, match="causal_encoder"):
        model.forward_windows(torch.ones(1, 21, dtype=torch.long), torch.zeros(1, 5, 4, dtype=torch.long))


def test_causal_encoder_trains_on_windows_and_fits_the_tiny_set(tmp_path):
    codes = catalog(n=20)
    data = _toy_sequences()
    train = TigerTrainConfig(epochs=40, batch_size=32, lr=3e-3, warmup_steps=10, beam_width=10, patience=None)
    model, state = train_tiger(codes, data, data, CAUSAL, train, directory=tmp_path, progress=False)
    assert state.best_valid > 0.9
    assert state.history[0]["examples"] == len(data)  # targets per epoch: the same as prefix training
    # each user's latest prefix: the full history, as at serving (earlier prefixes' contexts are longer than
    # the windows trained them with, so this toy does not pin them to top-1)
    latest = data.take(np.flatnonzero(np.r_[data.users[1:] != data.users[:-1], True]))
    top1 = recommend(model, torch.as_tensor(codes), SemanticIdTrie(codes, 4), latest, top_k=1, beam_width=10,
                     exclude_history=False).items[:, 0].numpy()
    assert (top1 == latest.targets).mean() > 0.9


def test_length_bucketed_batches_cover_every_row_once_with_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 21, 500)
    targets = np.minimum(lengths, rng.integers(1, 21, 500))
    batches = length_bucketed_batches(lengths, targets, batch_targets=64, rng=np.random.default_rng(1),
                                      chunk_rows=200)
    assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(500))
    sizes = np.array([targets[b].sum() for b in batches])
    # within a row (<= 20 targets) of 64, but for one remainder per chunk of 200 rows
    assert (sizes <= 64 - 20).sum() <= 3 and sizes.max() < 64 + 20
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < np.ptp(lengths) / 2  # rows of similar length share a batch
    again = length_bucketed_batches(lengths, targets, 64, np.random.default_rng(1), 200)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))  # fixed by the seed


def test_no_prefixes_give_no_windows():
    windows = windows_of_prefixes(_toy_sequences().take(np.zeros(0, dtype=np.int64)), width=5)
    assert len(windows) == 0 and windows.items.shape == (0, 6) and windows.targets == 0


def test_weight_average_follows_the_ema_recurrence_with_its_warm_up():
    model = torch.nn.Linear(3, 2)
    average = WeightAverage(model, decay=0.9)
    expected = [p.detach().clone() for p in model.parameters()]
    for step in range(30):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        average.update(step)
        decay = min(0.9, (1 + step) / (10 + step))  # early steps lean on the new weights
        expected = [decay * e + (1 - decay) * p.detach() for e, p in zip(expected, model.parameters(), strict=True)]
    for got, want in zip(average.model.parameters(), expected, strict=True):
        torch.testing.assert_close(got, want)
    assert not any(p.requires_grad for p in average.model.parameters())
    with pytest.raises(ValueError, match="ema_decay"):
        WeightAverage(model, decay=1.0)


def test_with_an_average_validation_and_best_weights_are_the_averaged_ones(tmp_path):
    codes = catalog(n=20)
    data = _toy_sequences()
    train = TigerTrainConfig(epochs=1, batch_size=16, warmup_steps=5, eval_users=20, beam_width=5, ema_decay=0.95)
    model, state = train_tiger(codes, data, data, SMALL, train, directory=tmp_path, progress=False)
    assert state.best_epoch == state.epoch == 1
    saved = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    best = torch.load(tmp_path / BEST_FILE, weights_only=True)["model"]
    raw = saved["model"]
    assert any(not torch.equal(raw[name], saved["average"][name]) for name in raw)  # the average is its own
    for name, tensor in saved["average"].items():  # the one epoch is the best: best.pt holds its average
        assert torch.equal(best[name], tensor), name
    for name, tensor in model.state_dict().items():  # the returned model is the average, not the raw weights
        assert torch.equal(tensor, saved["average"][name]), name
