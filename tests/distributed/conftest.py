"""One launch of two CPU processes (gloo) serves every multi-process test: starting Python, torch and
transformers twice costs more than all the training, so the jobs run one after another in the same processes."""

from pathlib import Path

import pytest

from tests.distributed.common import launch, launcher_env

N, BATCH, EPOCHS, TOL = 10, 4, 3, 1e-6
# per-device batch 1 on 2 processes: 2 accumulation steps per update (DDP no_sync / FSDP2 gradient-sync off)
CONFIG = dict(lr=1e-4, epochs=EPOCHS, batch_size=BATCH, per_device_batch_size=1, seed=5, progress=False,
              precision="fp32")
LORA = {**CONFIG, "lora_rank": 2, "lr": 1e-2, "epochs": 2}
LAST = {**CONFIG, "train_layers": "last:1", "epochs": 2}
BF16 = {**CONFIG, "precision": "bf16", "lr": 1e-6, "max_steps": 1}  # the paper's lr: one step in bf16 compute
CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "accelerate"
FSDP2_YAML = CONFIGS / "fsdp2_8gpu.yaml"
DEEPSPEED_YAML = CONFIGS / "deepspeed_zero3_offload.yaml"
# a warm-up and a decaying learning rate: DeepSpeed steps inside backward, so a rate set after it would lag a step
DS_CONFIG = {**CONFIG, "lr_schedule": "linear", "warmup_steps": 2}


_FAILED: dict[str, str] = {}


def _launch_once(name: str, *args, **kwargs) -> None:
    """launch(), but a session fixture that failed fails its later tests at once with the same message instead of
    launching again (pytest re-runs a failing session fixture for every test that asks for it)."""
    if name in _FAILED:
        pytest.fail(f"{name} failed earlier in this session: {_FAILED[name]}", pytrace=False)
    try:
        launch(*args, **kwargs)
    except BaseException as exc:
        _FAILED[name] = str(exc)[:2000]
        raise


@pytest.fixture(scope="session")
def two_process_runs(tiny_gpt2_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("two-processes")
    fsdp = launcher_env(FSDP2_YAML)  # what `accelerate launch --config_file fsdp2_8gpu.yaml` gives its workers
    jobs = [
        # the first job starts with a bare PartialState(), which on CPU joins no group: hyperfit must form one
        dict(name="unbroken", run=root / "unbroken", config=CONFIG, bare_partial_state=True),
        dict(name="stopped", run=root / "broken", config={**CONFIG, "max_steps": 4, "keep_checkpoints": 5}),
        dict(name="resumed", run=root / "broken", config={**CONFIG, "keep_checkpoints": 5}, resume=True),
        dict(name="fsdp-unbroken", run=root / "fsdp-unbroken", config=CONFIG, launch_env=fsdp),
        dict(name="fsdp-stopped", run=root / "fsdp-broken", config={**CONFIG, "max_steps": 4}, launch_env=fsdp),
        dict(name="fsdp-resumed", run=root / "fsdp-broken", config=CONFIG, resume=True, launch_env=fsdp),
        dict(name="fsdp-lora", run=root / "fsdp-lora", config=LORA, launch_env=fsdp),
        dict(name="fsdp-last", run=root / "fsdp-last", config=LAST, launch_env=fsdp),
        dict(name="fsdp-bf16", run=root / "fsdp-bf16", config=BF16, launch_env=fsdp),
    ]
    _launch_once("two_process_runs", 2, tiny_gpt2_dir, root / "out", jobs, n=N, timeout=600)
    return root


@pytest.fixture(scope="session")
def deepspeed_runs(tiny_gpt2_dir, tmp_path_factory):
    """DeepSpeed ZeRO-3 with CPU Adam (deepspeed_zero3_offload.yaml) on two CPU processes: its own launch, since
    the first use builds DeepSpeed's CPU Adam and shared-memory ops (2-3 minutes; cached afterwards)."""
    root = tmp_path_factory.mktemp("deepspeed")
    ds = launcher_env(DEEPSPEED_YAML)
    jobs = [
        dict(name="ds-unbroken", run=root / "unbroken", config=DS_CONFIG, launch_env=ds),
        # constant rate: a decaying one ends at the stopped run's planned last step, so would not continue the same
        dict(name="ds-stopped", run=root / "broken", config={**CONFIG, "max_steps": 4}, launch_env=ds),
        dict(name="ds-resumed", run=root / "broken", config=CONFIG, resume=True, launch_env=ds),
        dict(name="ds-bf16", run=root / "bf16", config=BF16, launch_env=ds),
    ]
    # a hang guard, not a speed target: ~3 minutes alone, over 10 at load 10 (the first use builds CPU Adam)
    _launch_once("deepspeed_runs", 2, tiny_gpt2_dir, root / "out", jobs, n=N, timeout=1500)
    return root
