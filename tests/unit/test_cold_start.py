import numpy as np
import pytest
import torch

from models.beam_search import BeamResult, SemanticIdTrie
from models.cold_start import ColdItems, cold_item_scores, cold_slots, with_cold_slots
from models.config import TigerConfig
from models.examples import Examples
from models.tiger import Tiger, encoder_tokens
from models.tiger_training import recommend

CONFIG = TigerConfig.debug(codebook_size=4, max_history=5)


def test_the_share_of_a_list_rounds_half_up_and_refuses_impossible_shares():
    assert [cold_slots(0.1, k) for k in (10, 5, 4, 50)] == [1, 1, 0, 5]
    assert cold_slots(0.0, 10) == 0 and cold_slots(1.0, 3) == 3
    with pytest.raises(ValueError, match="within"):
        cold_slots(1.5, 10)


@torch.no_grad()
def test_cold_scores_are_the_teacher_forced_log_probabilities_of_the_semantic_codes():
    torch.manual_seed(0)
    model = Tiger(CONFIG).eval()
    codes = torch.tensor([[0, 1, 2, 0], [3, 3, 1, 1], [0, 2, 2, 0]])
    histories = torch.tensor([[-1, -1, 0, 1, 2], [2, 1, 0, 2, 1]])
    memory, keep = model.encode(encoder_tokens(CONFIG, codes, histories, torch.arange(2)))
    first, rest = cold_item_scores(model, memory, keep, codes)
    for user in range(2):
        for item in range(3):
            tokens = model.decoder_input(codes[item:item + 1, :2])
            logits = model.decode(memory[user:user + 1], keep[user:user + 1], tokens).log_softmax(-1)[0]
            chosen = [logits[level, codes[item, level]].item() for level in range(3)]
            assert first[user, item].item() == pytest.approx(chosen[0], abs=1e-5)
            assert rest[user, item].item() == pytest.approx(chosen[1] + chosen[2], abs=1e-5)


def test_the_last_places_go_to_the_best_cold_items_by_first_code_then_deeper_codes():
    ranked = BeamResult(torch.tensor([[0, 1, 2, 3], [0, 1, 2, 3]]), torch.tensor([[-1.0, -2, -3, -4]] * 2))
    cold = torch.tensor([7, 8, 9])
    first = torch.tensor([[-1.0, -1.0, -5.0], [-1.0, -1.0, -5.0]])
    rest = torch.tensor([[-3.0, -2.0, -0.1], [-3.0, -2.0, -0.1]])
    exclude = torch.zeros(2, 10, dtype=torch.bool)
    exclude[1, 8] = True  # user 1 has seen item 8
    found = with_cold_slots(ranked, cold, first, rest, exclude, top_k=4, slots=2)
    assert found.items.tolist() == [[0, 1, 8, 7], [0, 1, 7, 9]]
    assert found.scores[0, 2].item() == pytest.approx(-3.0) and found.scores[0, 3].item() == pytest.approx(-4.0)


def test_a_slot_no_cold_item_can_take_keeps_the_ranked_item_and_nothing_repeats():
    ranked = BeamResult(torch.tensor([[0, 1, 5, 2]]), torch.tensor([[-1.0, -2, -3, -4]]))
    cold = torch.tensor([5, 6])
    exclude = torch.zeros(1, 10, dtype=torch.bool)
    exclude[0, 6] = True
    found = with_cold_slots(ranked, cold, torch.zeros(1, 2), torch.zeros(1, 2), exclude, top_k=4, slots=2)
    # item 5 (cold, in the ranked tail) takes the first slot; the second keeps ranked item 2
    assert found.items.tolist() == [[0, 1, 5, 2]]
    ranked = BeamResult(torch.tensor([[0, 1, 2, 5]]), torch.tensor([[-1.0, -2, -3, -4]]))
    found = with_cold_slots(ranked, cold, torch.zeros(1, 2), torch.zeros(1, 2), exclude, top_k=4, slots=2)
    assert found.items.tolist() == [[0, 1, 5, -1]]  # 5 moved up: its old place would repeat it


def test_recommend_gives_cold_items_the_last_place_and_a_zero_share_changes_nothing():
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
    assert (with_cold.items[:, 8:] >= 20).all()  # ten cold items, none seen: both slots are cold
    for row, history in zip(with_cold.items.tolist(), histories, strict=True):
        assert len(set(row)) == 10 and not set(row) & set(history.tolist())
