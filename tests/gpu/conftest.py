"""CUDA tests: run explicitly (`python -m pytest tests/gpu -q`, or scripts/gpu_check.sh on a GPU machine).

tests/conftest.py keeps CI's `python -m pytest` from collecting this folder; here every test is marked `gpu`
and skipped when CUDA is absent, so an explicit run on a CPU machine ends in skips, not errors.
"""

import pytest
import torch


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA device (tests/gpu, run by scripts/gpu_check.sh)")


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "tests/gpu/" in str(item.path).replace("\\", "/") + "/":
            item.add_marker(pytest.mark.gpu)
            if not torch.cuda.is_available():
                item.add_marker(skip)


@pytest.fixture
def cuda():
    torch.cuda.empty_cache()
    return torch.device("cuda")
