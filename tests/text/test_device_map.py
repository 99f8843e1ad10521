"""--device-map / --max-memory: one model split by transformers' big-model loading. Here (CPU only) a max_memory
that holds about half the tiny model puts the rest on disk (an offload folder); the greedy tokens and the
perplexity equal the one-device path."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hyperfit_core.cli import main
from hyperfit_core.device_map import load_kwargs, parse_max_memory
from hyperfit_core.errors import HyperfitError
from tests.text.conftest import synthetic_documents


def _half_of(model_dir: Path) -> str:
    weights = load_file(str(model_dir / "model.safetensors"))
    total = sum(t.numel() * t.element_size() for t in weights.values())
    return f"cpu={total // 2}"


def _run(argv, capsys) -> Path:
    capsys.readouterr()
    main(argv)
    return Path(capsys.readouterr().out.strip().splitlines()[-1])


def test_split_model_generates_the_same_greedy_tokens(tiny_llama_dir, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(synthetic_documents(3, seed=5)) + "\n", encoding="utf-8")
    common = ["text", "generate", "--model", str(tiny_llama_dir), "--prompts", str(prompts), "--context", "8",
              "--max-new-tokens", "10", "--out", str(tmp_path / "runs")]
    one = _run([*common, "--name", "one"], capsys)
    split = _run([*common, "--name", "split", "--device-map", "auto", "--max-memory", _half_of(tiny_llama_dir)],
                 capsys)
    placed = json.loads((split / "config.json").read_text())["config"]["device_map"]
    assert {"cpu", "disk"} <= set(placed.values()), placed  # really split: part in memory, part offloaded
    assert json.loads((one / "config.json").read_text())["config"]["device_map"] is None
    a = load_file(str(one / "one.generations.safetensors"))["generated"]
    b = load_file(str(split / "split.generations.safetensors"))["generated"]
    assert a.shape == (3, 10) and torch.equal(a, b)


def test_split_model_analyses_the_same(tiny_llama_dir, tmp_path):
    from hyperfit_core.analysis import prediction_stats
    from hyperfit_text.model import load_text_model

    ids = torch.randint(3, 40, (3, 12), generator=torch.Generator().manual_seed(1))
    whole = prediction_stats(load_text_model(str(tiny_llama_dir)).model, ids, 4)
    placement = load_kwargs("auto", _half_of(tiny_llama_dir))
    split_model = load_text_model(str(tiny_llama_dir), placement=placement).model
    assert "disk" in set(split_model.hf_device_map.values())
    split = prediction_stats(split_model, ids, 4)
    assert torch.equal(whole["top1_token"], split["top1_token"])
    assert torch.allclose(whole["cross_entropy"], split["cross_entropy"], atol=1e-5)


def test_device_map_options_are_checked(monkeypatch):
    assert parse_max_memory("0=70GiB, 1=70GiB,cpu=200GiB") == {0: "70GiB", 1: "70GiB", "cpu": "200GiB"}
    assert parse_max_memory("cpu=1000") == {"cpu": 1000}
    with pytest.raises(HyperfitError, match="DEVICE=SIZE"):
        parse_max_memory("gpu0:70GiB")
    with pytest.raises(HyperfitError, match="not a size"):
        parse_max_memory("0=lots")
    with pytest.raises(HyperfitError, match="pass --device-map auto"):
        load_kwargs(None, "cpu=1GiB")
    with pytest.raises(HyperfitError, match="pass one of them"):
        load_kwargs("auto", None, device="cpu")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(HyperfitError, match="launch one process"):
        load_kwargs("auto", None)
