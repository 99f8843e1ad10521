"""docs/scale.md's memory tables are the planner's output: each committed docs/measurements/plan_*.json is what
its command prints now, and every number in the tables is that JSON's."""

import json
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "scale.md"
PLANS = sorted((REPO / "docs" / "measurements").glob("plan_*.json"))
ROWS_8B = {"DDP, full": ("ddp", "full"), "DDP, last:1": ("ddp", "last:1"), "DDP, LoRA 16": ("ddp", "lora:16"),
           "FSDP2, full": ("fsdp2", "full"), "FSDP2 + offload, full": ("fsdp2_offload", "full"),
           "ZeRO-3 + offload, full": ("zero3_offload", "full")}
ROWS_70B = {"FSDP2, full": ("fsdp2", "full"), "FSDP2 + offload, full": ("fsdp2_offload", "full"),
            "ZeRO-3 + optimizer offload, full": ("zero3_offload", "full"),
            "FSDP2, last:1 (1.91B trainable)": ("fsdp2", "last:1"),
            "FSDP2, LoRA 16 (0.21B trainable)": ("fsdp2", "lora:16")}


def _plan(name: str) -> dict:
    return json.loads((REPO / "docs" / "measurements" / name).read_text())


def _row(plan: dict, strategy: str, train: str) -> dict:
    return next(r for r in plan["rows"] if (r["strategy"], r["train"]) == (strategy, train))


def _table(header_start: str) -> list[list[str]]:
    lines = DOC.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[first + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip().strip("*") for cell in line.strip("|").split("|")])
    return rows


def _cpu(row: dict) -> str:
    return f"{row['cpu_per_node_gb']:.0f}" if row["cpu_per_node_gb"] else "-"


def _commands() -> dict[str, list[str]]:
    """{plan file: the `hyperfit ...` command the doc prints beside it}."""
    found = {}
    for line in DOC.read_text().splitlines():
        match = re.match(r"^(hyperfit text plan .*--json)\s+# (plan_\S+\.json)$", line)
        if match:
            found[match.group(2)] = shlex.split(match.group(1))[1:]
    return found


def test_every_committed_plan_has_its_command_in_the_doc():
    assert PLANS and sorted(_commands()) == [p.name for p in PLANS]


@pytest.mark.parametrize("name", sorted(_commands()))
def test_each_committed_plan_is_what_its_command_prints_now(name, capsys, monkeypatch):
    from hyperfit_core.cli import main

    monkeypatch.chdir(REPO)  # the commands name configs/models/... from the repository root
    try:
        main(_commands()[name])
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr().err
    assert json.loads(capsys.readouterr().out) == _plan(name)


def test_the_8b_table_is_the_committed_plan():
    plan = _plan("plan_llama-3.1-8b_8x80gb.json")
    rows = _table("| Llama-3.1-8B, 8 x 80 GB")
    assert [r[0] for r in rows] == list(ROWS_8B)
    for label, trainable, weights, grads, optim, activ, total, cpu, fits in rows:
        row = _row(plan, *ROWS_8B[label])
        assert trainable == f"{row['trainable'] / 1e9:.2f}B"
        assert [weights, grads, optim, activ, total] == [f"{row[k]:.1f}" for k in (
            "weights_gb", "grads_gb", "optimizer_gb", "activations_gb", "total_gb")]
        assert (cpu, fits) == (_cpu(row), row["fits"])


def test_the_70b_table_is_the_committed_plans():
    plans = {"8": _plan("plan_llama-3.1-70b_8x80gb.json"), "32 (4 nodes)": _plan("plan_llama-3.1-70b_4x8x80gb.json")}
    rows = _table("| Llama-3.1-70B | GPUs")
    assert len(rows) == 6
    for label, gpus, total, ckpt, cpu, fits in rows:
        row = _row(plans[gpus], *ROWS_70B[label])
        assert [total, ckpt, cpu] == [f"{row['total_gb']:.1f}", f"{row['total_ckpt_gb']:.1f}", _cpu(row)]
        assert fits.split(" (")[0] == row["fits"]


def test_the_one_gpu_8b_sentence_is_the_committed_plan():
    row = _row(_plan("plan_llama-3.1-8b_1x80gb.json"), "ddp", "full")
    text = " ".join(DOC.read_text().split())
    assert re.search(rf"needs {row['total_gb']:.1f} GB \({row['total_ckpt_gb']:.1f} GB with activation", text)


def test_the_evaluation_table_is_the_committed_plans():
    plans = {"Llama-3.1-8B": _plan("plan_llama-3.1-8b_8x80gb.json"),
             "Llama-3.1-70B": _plan("plan_llama-3.1-70b_8x80gb.json")}
    layouts = {"one GPU": "one_device", "data parallel": "data_parallel", "device map": "device_map"}
    rows = _table("| Evaluating, 8 x 80 GB")
    assert len(rows) == 6
    for layout, model, weights, gpus, weights_gb, cache, total, fits in rows:
        inference = plans[model]["inference"]
        assert (inference["batch"], inference["prompt"], inference["new"]) == (32, 32, 256)
        row = next(r for r in inference["rows"] if (r["layout"], r["weights"]) == (layouts[layout], weights))
        assert [gpus, weights_gb, cache, total, fits] == [str(row["gpus"]), f"{row['weights_gb']:.1f}",
                                                          f"{row['kv_cache_gb']:.1f}", f"{row['total_gb']:.1f}",
                                                          row["fits"]]
