"""scripts/data_influence.py determinacy and quantity end to end on a tiny ImageGPT and 12 shipped images."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "data_influence.py"


@pytest.fixture(scope="module")
def influence():
    spec = importlib.util.spec_from_file_location("data_influence", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["data_influence"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("data_influence", None)


def test_vision_determinacy_and_quantity(influence, tiny_imagegpt_dir, image_folder_8px, tmp_path):
    common = ["--modality", "vision", "--model", str(tiny_imagegpt_dir), "--data", str(image_folder_8px),
              "--num-eval", "4", "--batch-size", "2", "--steps", "2", "--lr", "1e-3"]
    influence.main(["determinacy", *common, "--num-train", "4", "--order-seeds", "0", "1",
                    "--out", str(tmp_path / "det")])
    det = json.loads((tmp_path / "det" / "determinacy.json").read_text())
    assert det["modality"] == "vision" and len(det["agreement"]["pairs"]) == 3
    assert det["held_out_positions"] == 4 * (64 - 2 * 8)  # 4 images, rows 2..7 of 8x8
    run = det["runs"]["order0-shuffle1"]
    assert 0 <= run["type_token_ratio"] <= 1 and 0 <= run["patch_duplication"] <= 1 and run["steps"] == 2

    influence.main(["quantity", *common, "--sizes", "2", "4", "--out", str(tmp_path / "qty")])
    qty = json.loads((tmp_path / "qty" / "quantity.json").read_text())
    assert set(qty["summary"]) == {"2", "4"} and (tmp_path / "qty" / "quantity.png").is_file()
