"""FID/KID of chosen conditions of a benchmark run dir, one condition at a time, writing the JSON after each.

The same features and cache files as hyperfit_vision.benchmark (`<condition>.inception.safetensors` beside each
`<condition>.completions.safetensors`, `real.inception.safetensors`), so a later full benchmark of that run dir
reuses them. Use it when Inception time is short: score the conditions that matter first.

    python scripts/fid_from_cache.py runs/c-s0/seed0-lr0.001 hyperfit-greedy base-top-p --out fid.json

--unique-prefixes scores only the images whose prefix no other held-out image shares (greedy decoding gives
images with one prefix one identical completion; 137 of the first 1000 Fashion-MNIST test images share one
all-black prefix), a diagnostic beside the full FID, not a replacement.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from hyperfit_core.atomic import write_json
from hyperfit_core.formats import COMPLETIONS, FEATURES
from hyperfit_vision.benchmark import cached_features
from hyperfit_vision.fid import InceptionFeatures, check_images, fid_kid_from_features
from hyperfit_vision.completion import load_completions
from hyperfit_vision.tokens import tokens_to_images


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("conditions", nargs="+")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--unique-prefixes", action="store_true",
                   help="Score only the images whose prefix rows no other image in the set shares.")
    args = p.parse_args()
    extractor = InceptionFeatures(None)
    results, real_features, keep = {}, None, None
    for name in args.conditions:
        started = time.time()
        path = args.run / f"{name}.{COMPLETIONS}"
        data = load_completions(path)
        side = int(data["real_tokens"].shape[1] ** 0.5)
        if real_features is None:
            real = check_images(tokens_to_images(data["real_tokens"], data["palette"], side), "real images", 2)
            real_features = cached_features(extractor, real, path.with_name(f"real.{FEATURES}"))
            keep = torch.ones(len(real), dtype=torch.bool)
            if args.unique_prefixes:
                prefix = data["real_tokens"][:, :int(data["prefix_rows"]) * side]
                _, inverse, counts = torch.unique(prefix, dim=0, return_inverse=True, return_counts=True)
                keep = counts[inverse] == 1
        fake = check_images(tokens_to_images(data["tokens"], data["palette"], side), "generated images", 2)
        fake_features = cached_features(extractor, fake, path.with_name(f"{name}.{FEATURES}"))
        results[name] = {**fid_kid_from_features(real_features[keep], fake_features[keep]), "images": int(keep.sum()),
                         "minutes": (time.time() - started) / 60}
        write_json(args.out, {"run": str(args.run), "results": results})
        print(name, results[name], flush=True)


if __name__ == "__main__":
    main()
