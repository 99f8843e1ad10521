"""Training on CUDA through hyperfit_core.train.hyperfit: bf16 autocast keeps fp32 master weights that an
lr-1e-6 step moves; compiled and eager training follow the same loss curve."""

import json

import torch

from hyperfit_core.rundir import RunDir
from hyperfit_core.sequences import TokenSequences
from hyperfit_core.train import TrainConfig, hyperfit
from hyperfit_vision.model import build_imagegpt, load_imagegpt
from tests.vision.conftest import grid_palette


def _data(n=16, side=8, seed=0):
    pixels = torch.randint(0, 27, (n, side * side), generator=torch.Generator().manual_seed(seed))
    return TokenSequences.from_ids(torch.cat([torch.full((n, 1), 27), pixels], dim=1))


def _losses(run: RunDir) -> list[float]:
    return [r["loss"] for r in run.read_metrics() if r["event"] == "step"]


def test_bf16_saved_model_trains_its_fp32_master_weights_at_lr_1e6(cuda, tmp_path):
    saved = build_imagegpt(8, grid_palette(), n_layer=2, n_embd=64, n_head=4, seed=0)
    saved.model.to(torch.bfloat16)
    saved.save(tmp_path / "bf16")
    model = load_imagegpt(str(tmp_path / "bf16"))[0].model
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    config = TrainConfig(precision="bf16", lr=1e-6, epochs=1, batch_size=8, device="cuda", progress=False,
                         compile="off")  # compiled training has its own test below
    hyperfit(model, _data(), config, RunDir(tmp_path / "run"))
    weights = dict(model.named_parameters())
    assert {p.dtype for p in weights.values()} == {torch.float32}
    moved = weights["transformer.h.0.mlp.c_fc.weight"].detach().cpu() != before["transformer.h.0.mlp.c_fc.weight"]
    assert moved.float().mean() > 0.5  # in bf16 storage a 1e-6 step would round away almost everywhere
    assert all(not torch.equal(weights[name].detach().cpu(), before[name]) for name in
               ("transformer.wte.weight", "lm_head.weight", "transformer.h.1.attn.c_attn.weight"))


def test_compiled_and_eager_training_follow_the_same_loss_curve(cuda, tmp_path):
    curves = {}
    for setting in ("off", "on"):
        model = build_imagegpt(8, grid_palette(), n_layer=2, n_embd=64, n_head=4, seed=0).model
        run = RunDir(tmp_path / f"compile-{setting}")
        config = TrainConfig(precision="bf16", lr=1e-3, epochs=3, batch_size=8, device="cuda", progress=False,
                             compile=setting)
        hyperfit(model, _data(), config, run)
        curves[setting] = _losses(run)
        assert json.loads((run / "train_config.json").read_text())["compile"] == setting
    eager, compiled = torch.tensor(curves["off"]), torch.tensor(curves["on"])
    assert len(eager) == len(compiled) == 6
    assert eager[-1] < eager[0]  # it learns
    assert torch.allclose(eager, compiled, rtol=2e-2, atol=2e-2), (curves["off"], curves["on"])
