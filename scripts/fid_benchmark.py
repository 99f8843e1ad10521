"""FID benchmark: complete held-out images under the paper's conditions and score them.

Same as `hyperfit vision benchmark` (see its --help): base greedy, base top-p (p 0.9, T 0.7, k 50),
hyperfitted greedy, hyperfitted greedy + citation blocker; FID/KID against the real images, every
patch-repetition metric beside the real images' own, overlap with the hyperfitting data. Writes
results.json, results.md, results.png and grid.png into the run dir; completions are cached per
condition, so `--resume RUN` finishes an interrupted run.

    python scripts/fid_benchmark.py --base openai/imagegpt-large --hyperfit RUN/model --data cifar10 --download
    python scripts/fid_benchmark.py --base assets/fashion-base --hyperfit RUN/model --data fashion-mnist
"""

import sys

from hyperfit_core.cli import main

if __name__ == "__main__":
    main(["vision", "benchmark", *sys.argv[1:]])
