"""plan's evaluation rows against a hand computation on Llama-3.1-70B's published shape (configs/models)."""

import pytest

from hyperfit_core.plan import load_config, plan_memory
from tests.core.test_scale_doc import REPO

GB = 1e9


def test_70b_inference_rows_by_hand():
    plan = plan_memory(load_config(str(REPO / "configs" / "models" / "Llama-3.1-70B")), gpus=8, gpu_mem_gb=80,
                       infer_batch=32, infer_prompt=32, infer_new=256)
    rows = {(r["layout"], r["weights"]): r for r in plan.inference["rows"]}
    params = 70_553_706_496  # Llama-3.1-70B: 80 blocks, hidden 8192, 8 KV heads of 128, vocab 128256, untied head
    assert plan.params == params
    # keys + values x 80 layers x (8 x 128) x 2 bytes = 327,680 bytes per token, 32 x 288 tokens
    cache = 2 * 80 * 1024 * 2 * 32 * 288
    logits = 2 * 32 * 32 * 128256  # the prompt's logits in bf16
    one = rows["one_device", "bf16"]
    assert one["weights_gb"] * GB == pytest.approx(2 * params)
    assert one["kv_cache_gb"] * GB == pytest.approx(cache) and one["logits_gb"] * GB == pytest.approx(logits)
    assert one["total_gb"] == pytest.approx((2 * params + cache + logits) / GB) and one["fits"] == "no"
    dp = rows["data_parallel", "fp32"]  # a replica per GPU, 4 sequences each; fp32 + autocast's bf16 copy
    assert dp["batch_per_gpu"] == 4 and dp["weights_gb"] * GB == pytest.approx(6 * params)
    assert dp["kv_cache_gb"] * GB == pytest.approx(cache / 8) and dp["fits"] == "no"
    split = rows["device_map", "fp32"]  # 423 GB of fp32 weights and bf16 copies over 8 GPUs: 52.9 GB each
    assert split["weights_gb"] * GB == pytest.approx(6 * params / 8)
    assert split["total_gb"] * GB == pytest.approx(6 * params / 8 + cache / 8 + logits) and split["fits"] == "yes"
