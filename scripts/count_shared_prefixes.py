"""How many held-out Fashion-MNIST test images share their prefix rows with another one (docs/results.md).

Greedy decoding gives every image with the same prefix the same completion, so `scripts/fid_from_cache.py
--unique-prefixes` scores only the images whose prefix no other shares. This counts the others, in groups,
tokenised with the base model's palette as the benchmark tokenises them (first N test images, top 4 of 16 rows).

    python scripts/count_shared_prefixes.py --data-root data --out docs/measurements/shared_prefixes_fashion1000.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from hyperfit_core.atomic import write_json
from hyperfit_core.options import COUNT
from hyperfit_vision.data import load_torchvision_dataset
from hyperfit_vision.model import load_imagegpt
from hyperfit_vision.tokens import images_to_tokens

BASE = Path(__file__).resolve().parents[1] / "assets" / "fashion-base"


def prefix_groups(tokens: torch.Tensor, prefix_len: int) -> dict:
    """Sizes of the groups of rows whose first prefix_len tokens are identical (groups of one left out)."""
    prefix = tokens[:, :prefix_len]
    unique, inverse, counts = torch.unique(prefix, dim=0, return_inverse=True, return_counts=True)
    shared = sorted(((int(n), unique[i]) for i, n in enumerate(counts) if n > 1), key=lambda g: -g[0])
    return {"images": len(tokens), "unique": int((counts[inverse] == 1).sum()),
            "shared": int((counts[inverse] > 1).sum()), "group_sizes": [n for n, _ in shared],
            "largest_group_one_colour": bool(shared and len(set(shared[0][1].tolist())) == 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="data")
    p.add_argument("--num-test", type=COUNT, default=1000)
    p.add_argument("--prefix-rows", type=COUNT, default=4)
    p.add_argument("--out", type=Path, default=None, help="JSON file for the counts.")
    args = p.parse_args()
    base, _ = load_imagegpt(str(BASE))
    images = load_torchvision_dataset("fashion-mnist", args.data_root, "test").first(args.num_test, "test images")
    tokens = images_to_tokens(images.resized(base.side).images, base.palette)
    result = {"data": "fashion-mnist test", "prefix_rows": args.prefix_rows, "side": base.side,
              **prefix_groups(tokens, args.prefix_rows * base.side)}
    print(result)
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
