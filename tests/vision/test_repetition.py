"""Repetition metrics on crafted images whose answers are known by construction."""

import numpy as np
import pytest
import torch

from hyperfit_core.errors import HyperfitError
from hyperfit_vision.repetition import (
    compressed_sizes,
    compression_ratio,
    format_report,
    patch_duplication,
    repetition_report,
    row_repetition,
    token_repetition,
)

SIDE, PREFIX = 32, 8


def noise(n=4, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, SIDE, SIDE, 3), dtype=np.uint8))


def constant(n=2, value=100):
    return torch.full((n, SIDE, SIDE, 3), value, dtype=torch.uint8)


def rows_repeating(n=2, seed=1):
    """Every row equals the row above (colours vary along the row): the prompt's bottom row copied all the way
    down, the degenerate completion row repetition is meant to catch."""
    row = np.random.default_rng(seed).integers(0, 256, (n, 1, SIDE, 3), dtype=np.uint8)
    return torch.from_numpy(np.repeat(row, SIDE, axis=1))


def test_rows_copying_the_row_above_score_one_and_noise_scores_zero():
    assert row_repetition(rows_repeating(), PREFIX) == 1.0
    assert row_repetition(noise(), PREFIX) == 0.0


def test_horizontal_stripes_repeat_except_at_stripe_edges():
    colours = np.random.default_rng(2).integers(0, 256, (SIDE // 4, 3), dtype=np.uint8)
    image = torch.from_numpy(np.repeat(colours, 4, axis=0)[None, :, None, :].repeat(SIDE, axis=2))
    assert row_repetition(image, PREFIX) == pytest.approx(3 / 4)  # a new stripe starts every 4th row


def test_row_repetition_counts_a_copy_of_the_last_prefix_row_and_honours_the_tolerance():
    images = noise(1)
    images[0, PREFIX] = images[0, PREFIX - 1]  # first generated row copies the prompt's last row
    assert row_repetition(images, PREFIX) == pytest.approx(1 / (SIDE - PREFIX))
    shifted = rows_repeating(1).clone()
    shifted[0, PREFIX:] = (shifted[0, PREFIX:].int() + 3).clamp(max=255).to(torch.uint8)  # one step of <= 3 levels
    assert row_repetition(shifted, PREFIX, tolerance=4.0) == 1.0
    assert row_repetition(shifted, PREFIX, tolerance=0.0) < 1.0


def test_patch_duplication_constant_is_one_noise_is_zero():
    assert patch_duplication(constant(), PREFIX) == 1.0
    assert patch_duplication(noise(), PREFIX) == 0.0


def test_patch_duplication_sees_one_repeated_motif_at_any_offset():
    image = noise(1, seed=3)
    image[0, 20:24, 13:17] = image[0, 10:14, 2:6]  # off the 4 x 4 grid on purpose
    dup = patch_duplication(image, PREFIX)
    n_patches = (SIDE - PREFIX - 3) * (SIDE - 3)
    assert dup == pytest.approx(2 / n_patches)


def test_patch_duplication_ignores_the_prefix():
    image = noise(1, seed=4)
    image[0, :PREFIX] = 7  # a flat prompt full of duplicate patches
    assert patch_duplication(image, PREFIX) == 0.0


def test_compressibility_of_an_image_against_itself_is_one():
    images = noise(3)
    assert compression_ratio(images, images, PREFIX) == 1.0
    assert compression_ratio(constant(3), images, PREFIX) < 0.05  # flat completions compress far better
    assert compressed_sizes(constant(1), PREFIX)[0] < compressed_sizes(noise(1), PREFIX)[0]


def test_token_metrics_constant_vs_distinct():
    n_tokens = SIDE * SIDE
    flat = torch.zeros(2, n_tokens, dtype=torch.long)
    flat_scores = token_repetition(flat, SIDE, SIDE, PREFIX)
    generated = (SIDE - PREFIX) * SIDE
    assert flat_scores["seq_rep_1"] == pytest.approx(1 - 1 / generated)
    assert flat_scores["seq_rep_4"] == pytest.approx(1 - 1 / (generated - 3))
    assert flat_scores["type_token_ratio"] == pytest.approx(1 / generated)
    distinct = torch.arange(n_tokens)[None].repeat(2, 1)  # every generated token different
    scores = token_repetition(distinct, SIDE, SIDE, PREFIX)
    assert scores["seq_rep_1"] == scores["seq_rep_4"] == 0.0
    assert scores["type_token_ratio"] == 1.0


def test_token_ngrams_only_read_the_generated_region():
    tokens = torch.zeros(1, SIDE * SIDE, dtype=torch.long)
    tokens[0, PREFIX * SIDE:] = torch.arange((SIDE - PREFIX) * SIDE)  # prompt is all zeros, completion distinct
    assert token_repetition(tokens, SIDE, SIDE, PREFIX)["seq_rep_1"] == 0.0


def test_seq_rep_2_of_an_alternating_sequence():
    tokens = torch.tensor([[0, 1] * (SIDE * SIDE // 2)])
    scores = token_repetition(tokens, SIDE, SIDE, PREFIX)
    generated = (SIDE - PREFIX) * SIDE
    assert scores["seq_rep_2"] == pytest.approx(1 - 2 / (generated - 1))  # only "0 1" and "1 0"


def test_report_puts_a_real_score_beside_every_generated_one():
    generated = constant(4)
    real = noise(4)
    gen_tokens = torch.zeros(4, SIDE * SIDE, dtype=torch.long)
    real_tokens = torch.from_numpy(np.random.default_rng(5).integers(0, 512, (4, SIDE * SIDE)))
    report = repetition_report(generated, real, gen_tokens, real_tokens, PREFIX)
    metrics = report["metrics"]
    assert set(metrics) == {"row_repetition", "patch_duplication", "compressed_bytes_per_pixel",
                            "compression_ratio_vs_real", "seq_rep_1", "seq_rep_2", "seq_rep_3", "seq_rep_4",
                            "type_token_ratio"}
    assert all(set(pair) == {"generated", "real"} for pair in metrics.values())
    assert metrics["row_repetition"] == {"generated": 1.0, "real": 0.0}
    assert metrics["patch_duplication"] == {"generated": 1.0, "real": 0.0}
    assert metrics["compression_ratio_vs_real"]["real"] == 1.0
    assert metrics["compression_ratio_vs_real"]["generated"] < 0.05
    assert metrics["seq_rep_4"]["generated"] > 0.99
    assert metrics["seq_rep_4"]["real"] < 0.1
    assert report["generated_rows"] == SIDE - PREFIX and report["settings"]["patch_size"] == 4
    text = format_report(report)
    assert "row_repetition: generated 1.0000 (real images 0.0000)" in text


def test_report_without_tokens_and_with_unpaired_counts():
    report = repetition_report(constant(2), noise(5), prefix_rows=PREFIX)
    assert "seq_rep_1" not in report["metrics"]
    assert report["metrics"]["compression_ratio_vs_real"] == {"generated": None, "real": None}
    assert "n/a" in format_report(report)


@pytest.mark.parametrize("call, message", [
    (lambda: repetition_report(noise(2), noise(2)[:, :16], prefix_rows=PREFIX), "same size"),
    (lambda: repetition_report(noise(2), noise(2), prefix_rows=SIDE), "prefix_rows"),
    (lambda: repetition_report(noise(2), noise(2), prefix_rows=-1), "prefix_rows"),
    (lambda: repetition_report(noise(2).float(), noise(2), prefix_rows=PREFIX), "uint8"),
    (lambda: repetition_report(noise(2)[..., :1], noise(2), prefix_rows=PREFIX), "(N, H, W, 3)"),
    (lambda: repetition_report(noise(2), noise(2), torch.zeros(2, 10, dtype=torch.long),
                               torch.zeros(2, 10, dtype=torch.long), PREFIX), "palette ids"),
    (lambda: repetition_report(noise(2), noise(2), torch.zeros(2, SIDE * SIDE, dtype=torch.long), None, PREFIX),
     "both"),
    (lambda: repetition_report(noise(2), noise(2), torch.zeros(3, SIDE * SIDE, dtype=torch.long),
                               torch.zeros(2, SIDE * SIDE, dtype=torch.long), PREFIX), "token rows"),
    (lambda: patch_duplication(noise(1), SIDE - 2, patch_size=4), "does not fit"),
    (lambda: compression_ratio(noise(2), noise(3), PREFIX), "pairs"),
])
def test_bad_inputs_raise_one_clear_error(call, message):
    with pytest.raises(HyperfitError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()
