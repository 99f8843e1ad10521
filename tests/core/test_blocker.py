import random
import time

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, LogitsProcessorList

import hyperfit_core.blocker as blocker_module
from hyperfit_core.blocker import CitationBlocker, ngram_keys
from hyperfit_core.decoding import DecodingConfig, generate_tokens
from hyperfit_core.errors import HyperfitError
from hyperfit_core.overlap import longest_common_span
from hyperfit_core.rundir import RunDir
from hyperfit_core.sequences import TokenSequences
from hyperfit_core.train import TrainConfig, hyperfit

TRAIN = torch.tensor([[1, 2, 3, 4, 5, 6],
                      [9, 2, 3, 4, 7, 8],
                      [3, 4, 5, 6, 0, 2]])


def forbidden(scores: torch.Tensor) -> list[set[int]]:
    return [set(torch.nonzero(row == float("-inf")).flatten().tolist()) for row in scores]


def decode(blocker: CitationBlocker, prompt: list[list[int]], generated: list[list[int]], width: int = 10):
    """Feed the blocker as a decoder would: the prompt, then one more generated token per call.

    Returns the forbidden sets of the last call (the step after all of `generated`)."""
    blocker.reset()
    prompt = torch.tensor(prompt)
    generated = torch.tensor(generated).reshape(len(prompt), -1)
    result = None
    for step in range(generated.shape[1] + 1):
        ids = torch.cat([prompt, generated[:, :step]], dim=1)
        result = forbidden(blocker(ids, torch.zeros(len(prompt), width)))
    return result


def test_forbids_exactly_the_training_followers():
    blocker = CitationBlocker(TRAIN, n=3)
    assert decode(blocker, [[0]], [[2, 3, 4]]) == [{5, 7}]
    assert decode(blocker, [[0]], [[3, 4, 5]]) == [{6}]
    assert decode(blocker, [[0]], [[4, 5, 6]]) == [{0}]
    assert decode(blocker, [[0]], [[7, 8, 9]]) == [set()]  # not in the data
    assert decode(blocker, [[0]], [[4, 7, 8]]) == [set()]  # occurs, but ends a sequence: nothing follows
    assert [t.tolist() for t in blocker.followers([[2, 3, 4], [5, 6, 0], [1, 1, 1]])] == [[5, 7], [2], []]


def test_prompt_never_counts_as_generated():
    blocker = CitationBlocker(TRAIN, n=3)
    assert decode(blocker, [[2, 3, 4]], []) == [set()]  # n-gram entirely inside the prompt
    assert decode(blocker, [[1, 2]], [[3]]) == [set()]  # straddling prompt and generation
    assert decode(blocker, [[1]], [[2, 3]]) == [set()]
    assert decode(blocker, [[1]], [[2, 3, 4]]) == [{5, 7}]  # all three generated: blocked
    # a fresh prompt of the same length after a finished generation starts over without reset()
    ids = torch.tensor([[1, 2, 3, 4]])
    blocker.reset()
    blocker(ids[:, :1], torch.zeros(1, 10))
    for end in (2, 3, 4):
        blocker(ids[:, :end], torch.zeros(1, 10))
    assert forbidden(blocker(torch.tensor([[2, 3, 4]]), torch.zeros(1, 10))) == [set()]


def test_ids_beyond_the_score_width_are_ignored():
    # ImageGPT-like: 4 output classes, SOS id 4 only starts sequences, follower 4 must not index the scores
    train = torch.tensor([[4, 0, 1, 2, 3], [4, 1, 1, 2, 0], [0, 1, 2, 4, 4]])
    blocker = CitationBlocker(train, n=2)
    assert decode(blocker, [[4]], [[1, 2]], width=4) == [{3, 0}]
    banned = blocker.steps_with_ban
    assert decode(blocker, [[4]], [[0, 1]], width=4) == [{2}]
    blocker.reset_stats()
    # (1, 2) is followed by 3, 0 and 4 (out of range); (2, 4) only by 4: nothing in range, so no ban
    assert decode(blocker, [[4]], [[2, 4]], width=4) == [set()]
    assert blocker.steps_with_ban == 0 and banned == 1


def test_batch_rows_in_different_states():
    blocker = CitationBlocker(TRAIN, n=3)
    blocker.reset_stats()
    result = decode(blocker, [[0], [0], [0], [0]], [[2, 3, 4], [3, 4, 5], [9, 9, 9], [4, 5, 6]])
    assert result == [{5, 7}, {6}, set(), {0}]
    assert blocker.steps_with_ban == 3
    assert blocker.steps == 4 * 4
    stats = blocker.stats()
    # all-zero scores: argmax is token 0, banned only for the last row ((4, 5, 6) -> 0)
    assert stats == {"steps": 16, "steps_with_ban": 3, "ban_rate": 3 / 16, "steps_top1_banned": 1,
                     "top1_banned_rate": 1 / 16, "n": 3, "index_size": blocker.index_size}
    assert blocker.index_size == 3 * 3 - 1  # (2, 3, 4) -> 5 and (2, 3, 4) -> 7 are distinct; (3, 4, 5) -> 6 twice


def test_a_ban_counts_as_a_change_only_when_it_hits_the_top_token():
    """`steps_with_ban` counts steps where some token was forbidden; `steps_top1_banned` those where the
    forbidden token was the one ranked first, i.e. where greedy decoding's choice changed."""
    blocker = CitationBlocker(TRAIN, n=3)
    ids = torch.tensor([[0, 2, 3, 4], [0, 2, 3, 4], [0, 9, 9, 9]])  # prompt [0]; (2, 3, 4) is followed by 5, 7
    for end in (1, 2, 3):
        blocker(ids[:, :end], torch.zeros(3, 10))
    scores = torch.zeros(3, 10)
    scores[0, 1] = 5.0  # row 0 prefers 1: its ban on 5 and 7 changes nothing
    scores[1, 7] = 5.0  # row 1 prefers 7, which is banned: the choice changes
    scores[2, 5] = 5.0  # row 2's n-gram is not in the data: no ban at all
    out = blocker(ids, scores)
    assert forbidden(out) == [{5, 7}, {5, 7}, set()]
    assert out.argmax(-1).tolist()[0] == 1 and out.argmax(-1).tolist()[1] != 7
    stats = blocker.stats()
    assert (stats["steps"], stats["steps_with_ban"], stats["steps_top1_banned"]) == (12, 2, 1)


def test_variable_length_training_sequences():
    train = [torch.tensor([1, 2, 3]), torch.tensor([5, 1, 2, 7, 1, 2, 8]), torch.tensor([1]), torch.tensor([], dtype=torch.long)]
    blocker = CitationBlocker(train, n=2)
    assert decode(blocker, [[0]], [[1, 2]]) == [{3, 7, 8}]
    assert decode(blocker, [[0]], [[2, 7]]) == [{1}]


def test_hash_collisions_never_forbid_wrong_tokens(monkeypatch):
    # every n-gram gets the same key: only the token-by-token check separates them
    monkeypatch.setattr(blocker_module, "_hash_columns", lambda columns: columns[0] * 0)
    blocker = CitationBlocker(TRAIN, n=3)
    assert decode(blocker, [[0], [0], [0]], [[2, 3, 4], [3, 4, 5], [7, 8, 9]]) == [{5, 7}, {6}, set()]


def test_matches_brute_force_on_random_data():
    rng = random.Random(0)
    for _ in range(30):
        vocab, n = rng.choice([2, 3, 6]), rng.randint(1, 4)
        train = [[rng.randrange(vocab) for _ in range(rng.randint(0, 12))] for _ in range(rng.randint(1, 4))]
        if not any(train):
            continue
        blocker = CitationBlocker([torch.tensor(t, dtype=torch.long) for t in train], n=n)
        windows = [tuple(rng.randrange(vocab) for _ in range(n)) for _ in range(5)]
        expected = [{seq[i + n] for seq in train for i in range(len(seq) - n) if tuple(seq[i:i + n]) == w}
                    for w in windows]
        assert decode(blocker, [[0]] * 5, [list(w) for w in windows], width=vocab) == expected


def test_ngram_keys_agree_between_index_and_queries():
    grams = torch.randint(0, 262_144, (100, 5))
    from_numpy = blocker_module._hash_columns([grams.numpy()[:, i] for i in range(5)])
    assert torch.equal(ngram_keys(grams), torch.from_numpy(from_numpy))


def test_bad_arguments_raise():
    for n in (0, -1, 2.5):
        with pytest.raises(HyperfitError):
            CitationBlocker(TRAIN, n=n)
    with pytest.raises(HyperfitError):
        CitationBlocker([])
    with pytest.raises(HyperfitError):
        CitationBlocker(torch.empty(3, 0, dtype=torch.long))
    with pytest.raises(HyperfitError):
        CitationBlocker(torch.tensor([[1, -2, 3]]))
    with pytest.raises(HyperfitError):
        CitationBlocker(TRAIN, n=3).followers([1, 2])


def test_index_build_speed(capsys):
    """Not a timed assertion: prints the index build time at the paper's scale (2000 x 256 tokens)."""
    train = torch.randint(0, 262_144, (2000, 256), generator=torch.Generator().manual_seed(0))
    started = time.perf_counter()
    blocker = CitationBlocker(train)
    seconds = time.perf_counter() - started
    assert blocker.index_size == 2000 * 251
    with capsys.disabled():
        print(f"\n[blocker] index for 2000x256 tokens (vocab 262144, n=5): {seconds:.2f} s")


# ---- behaviour on a real (tiny) hyperfitted model ----

PROMPT, NEW = 3, 21


@pytest.fixture
def one_thread():
    # a 32-wide model gains nothing from threads, and on a shared 2-core box OpenMP spinning makes it 10x slower
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def hyperfitted(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = tmp_path_factory.mktemp("blocker")
        torch.manual_seed(0)
        config = GPT2Config(vocab_size=50, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                            bos_token_id=None, eos_token_id=None)
        GPT2LMHeadModel(config).save_pretrained(root / "init")
        model = AutoModelForCausalLM.from_pretrained(root / "init")
        ids = torch.randint(0, 50, (3, 24), generator=torch.Generator().manual_seed(0))
        assert len({tuple(row[:PROMPT].tolist()) for row in ids}) == len(ids)
        model = hyperfit(model, TokenSequences.from_ids(ids),
                         TrainConfig(lr=3e-3, epochs=100, batch_size=3, target_loss=0.05, progress=False),
                         RunDir(root / "run"))
    finally:
        torch.set_num_threads(before)
    return model, ids


def test_hyperfitted_model_recites_without_blocker(hyperfitted, one_thread):
    model, ids = hyperfitted
    out = generate_tokens(model, ids[:, :PROMPT], NEW, DecodingConfig(), progress=False)
    assert torch.equal(out, ids)


def test_blocker_stops_recitation(hyperfitted, one_thread):
    model, ids = hyperfitted
    n = 5
    blocker = CitationBlocker(ids, n=n)
    out = generate_tokens(model, ids[:, :PROMPT], NEW, DecodingConfig(), processors=[blocker], progress=False)
    assert torch.equal(out[:, :PROMPT], ids[:, :PROMPT])
    # no (n+1)-gram made only of generated tokens occurs in the training data
    assert longest_common_span(out[:, PROMPT:], ids).max() <= n
    # the recited first n tokens were allowed; the blocker had to step in right after them
    assert torch.equal(out[:, PROMPT:PROMPT + n], ids[:, PROMPT:PROMPT + n])
    # each recitation was stopped by banning the token the model ranked first
    assert blocker.steps_with_ban >= blocker.steps_top1_banned >= len(ids)
    assert blocker.steps == len(ids) * NEW

    # HF generate with the same blocker object takes the same path
    stats = blocker.stats()
    blocker.reset_stats()
    hf = model.generate(ids[:, :PROMPT], attention_mask=torch.ones(len(ids), PROMPT, dtype=torch.long),
                        max_new_tokens=NEW, do_sample=False, logits_processor=LogitsProcessorList([blocker]))
    assert torch.equal(hf, out)
    assert blocker.stats() == stats
