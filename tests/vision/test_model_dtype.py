"""Checkpoints saved in bf16 load with fp32 weights: an Adam step at lr 1e-6 must not round away."""

import torch

from hyperfit_vision.model import build_imagegpt, load_imagegpt
from tests.vision.conftest import grid_palette


def test_bf16_saved_imagegpt_loads_and_trains_in_fp32(tmp_path):
    saved = build_imagegpt(8, grid_palette(), n_layer=1, n_embd=16, n_head=2, seed=0)
    saved.model.to(torch.bfloat16)
    saved.save(tmp_path)
    loaded, _ = load_imagegpt(str(tmp_path))
    assert {p.dtype for p in loaded.model.parameters()} == {torch.float32}
    # the same values, only wider
    assert torch.equal(loaded.model.transformer.wte.weight, saved.model.transformer.wte.weight.float())
    # and one lr-1e-6 Adam step moves the weights (in bf16 it would not: 1e-6 is below bf16's resolution)
    model = loaded.model.train()
    before = model.transformer.h[0].mlp.c_fc.weight.detach().clone()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-6)
    ids = torch.randint(0, 27, (2, 65), generator=torch.Generator().manual_seed(0))
    model(input_ids=ids[:, :-1], labels=ids[:, :-1]).loss.backward()
    optimizer.step()
    assert not torch.equal(model.transformer.h[0].mlp.c_fc.weight, before)
