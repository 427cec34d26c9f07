import numpy as np
import pytest
import torch

from models.beam_search import BeamResult, SemanticIdTrie
from models.cold_start import ColdItems, best_cold_items, cold_slots, with_cold_places
from models.config import TigerConfig
from models.examples import Examples
from models.tiger import Tiger, encoder_tokens
from models.tiger_training import recommend

CONFIG = TigerConfig.debug(codebook_size=4, max_history=5)


def test_the_share_of_a_list_rounds_half_up_and_refuses_impossible_shares():
    assert [cold_slots(0.1, k) for k in (10, 5, 4, 50)] == [1, 1, 0, 5]
    assert cold_slots(0.0, 10) == 0 and cold_slots(1.0, 3) == 3
    with pytest.raises(ValueError, match="within"):
        ColdItems(np.arange(3), share=1.5)


@torch.no_grad()
def test_cold_items_are_ordered_by_first_code_then_deeper_codes_scored_by_teacher_forcing():
    torch.manual_seed(0)
    model = Tiger(CONFIG).eval()
    every = np.array(np.meshgrid(*[range(4)] * 4)).reshape(4, -1).T
    codes = torch.as_tensor(every[np.random.default_rng(0).choice(len(every), 12, replace=False)])
    histories = torch.tensor([[-1, -1, 0, 1, 2], [2, 1, 0, 2, 1]])
    memory, keep = model.encode(encoder_tokens(CONFIG, codes, histories, torch.arange(2)))
    cold_rows = torch.arange(4, 12)
    exclude = torch.zeros(2, 12, dtype=torch.bool)
    exclude[1, 5] = True  # user 1 has seen cold item 5
    found = best_cold_items(model, memory, keep, cold_rows, codes[cold_rows], exclude, count=8)
    for user in range(2):
        expected = []
        for item in cold_rows.tolist():
            if exclude[user, item]:
                continue
            tokens = model.decoder_input(codes[item:item + 1, :2])
            logits = model.decode(memory[user:user + 1], keep[user:user + 1], tokens).log_softmax(-1)[0]
            first, *deeper = (logits[level, codes[item, level]].item() for level in range(3))
            expected.append((-first, -sum(deeper), item, first + sum(deeper)))
        expected.sort()
        items = found.items[user].tolist()
        assert items[:len(expected)] == [item for *_, item, _ in expected]
        assert items[len(expected):] == [-1] * (8 - len(expected))
        assert found.scores[user, :len(expected)].tolist() == pytest.approx([s for *_, s in expected], abs=1e-5)


def test_the_last_places_go_to_the_best_cold_items_not_already_kept():
    ranked = BeamResult(torch.tensor([[0, 1, 2, 3], [0, 8, 2, 3]]), torch.tensor([[-1.0, -2, -3, -4]] * 2))
    cold = BeamResult(torch.tensor([[8, 7, 9], [8, 7, 9]]), torch.tensor([[-3.0, -4, -5]] * 2))
    found = with_cold_places(ranked, cold, top_k=4, slots=2)
    assert found.items.tolist() == [[0, 1, 8, 7], [0, 8, 7, 9]]  # user 1 keeps item 8 in its own place
    assert found.scores[0].tolist() == [-1.0, -2.0, -3.0, -4.0] and found.scores[1, 3].item() == -5.0


def test_a_place_no_cold_item_can_take_keeps_the_ranked_item_and_nothing_repeats():
    ranked = BeamResult(torch.tensor([[0, 1, 5, 2]]), torch.tensor([[-1.0, -2, -3, -4]]))
    cold = BeamResult(torch.tensor([[5, -1]]), torch.tensor([[-6.0, float("-inf")]]))
    # cold item 5 (also in the ranked tail) takes the first place; the second keeps ranked item 2
    assert with_cold_places(ranked, cold, top_k=4, slots=2).items.tolist() == [[0, 1, 5, 2]]
    ranked = BeamResult(torch.tensor([[0, 1, 2, 5]]), torch.tensor([[-1.0, -2, -3, -4]]))
    # 5 moves up into the first cold place: keeping it in its own place as well would repeat it
    assert with_cold_places(ranked, cold, top_k=4, slots=2).items.tolist() == [[0, 1, 5, -1]]


def test_recommend_gives_cold_items_the_last_places_and_a_zero_share_changes_nothing():
    torch.manual_seed(0)
    model = Tiger(CONFIG).eval()
    rng = np.random.default_rng(0)
    every = np.array(np.meshgrid(*[range(4)] * 4)).reshape(4, -1).T
    codes = every[rng.choice(len(every), 30, replace=False)]
    histories = rng.integers(0, 20, size=(6, 5))  # items 20..29 never in a history: the cold ones
    examples = Examples(np.array([f"u{u}" for u in range(6)], dtype=object), histories, np.zeros(6, dtype=int))
    trie = SemanticIdTrie(codes, 4)
    plain = recommend(model, torch.as_tensor(codes), trie, examples, top_k=10, beam_width=16)
    none = recommend(model, torch.as_tensor(codes), trie, examples, top_k=10, beam_width=16,
                     cold=ColdItems(np.arange(20, 30), share=0.0))
    assert torch.equal(plain.items, none.items)
    with_cold = recommend(model, torch.as_tensor(codes), trie, examples, top_k=10, beam_width=16,
                          cold=ColdItems(np.arange(20, 30), share=0.2))
    assert torch.equal(with_cold.items[:, :8], plain.items[:, :8])
    assert (with_cold.items[:, 8:] >= 20).all()  # ten cold items, none seen: both places are cold
    for row, history in zip(with_cold.items.tolist(), histories, strict=True):
        assert len(set(row)) == 10 and not set(row) & set(history.tolist())


def test_the_nightly_job_sets_the_share_and_refuses_an_impossible_one():
    from jobs.generate_candidates import build_parser
    from pipelines.retrieval.serving import TigerRetriever, with_cold_share

    assert build_parser().parse_args(["--cold-share", "0"]).cold_share == 0.0
    assert build_parser().parse_args([]).cold_share is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--cold-share", "1.5"])
    served = TigerRetriever(model=None, version="v", index=None, cold=ColdItems(np.arange(3)))
    assert with_cold_share(served, None) is served
    assert with_cold_share(served, 0.0).cold.share == 0.0
    assert np.array_equal(with_cold_share(served, 0.3).cold.rows, np.arange(3))
    assert with_cold_share(TigerRetriever(model=None, version="v", index=None), 0.3).cold is None
