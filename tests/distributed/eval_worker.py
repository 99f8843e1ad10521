"""One process of a data-parallel evaluation test (launched by tests/distributed through torch.distributed.run).

Runs the spec's hyperfit command lines one after another in the same processes (and process group), exactly as a
user types them under `torchrun --nproc_per_node 2 -m hyperfit_core.cli ...`; after each, every process waits for
the others (the next command may read what the main process just wrote) and records that it finished it.
"""

import json
import os
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)

from hyperfit_core.cli import main  # noqa: E402


def record_scored(out: Path, rank: int) -> None:
    """Log which texts this process ran the quality scoring model on (MAUVE features, fluency perplexities), one
    list per call, and how many images it ran the Inception network on per call, to OUT/scored-rankR.json: the
    test checks each text or image is scored once over the processes."""
    import hyperfit_text.fluency as fluency
    import hyperfit_text.text_features as text_features
    from hyperfit_vision.fid import InceptionFeatures

    scored: dict[str, list] = {"features": [], "fluency": [], "inception": []}

    def logged(kind, compute, texts_of):
        def wrapper(model, *args, **kwargs):
            scored[kind].append(texts_of(*args))
            (out / f"scored-rank{rank}.json").write_text(json.dumps(scored))
            return compute(model, *args, **kwargs)
        return wrapper

    text_features.text_features = logged("features", text_features.text_features, lambda texts, *_: texts)
    fluency.continuation_nll = logged("fluency", fluency.continuation_nll,
                                      lambda contexts, continuations, *_: [list(p) for p in zip(contexts,
                                                                                                continuations)])
    InceptionFeatures.forward = logged("inception", InceptionFeatures.forward, lambda images: len(images))


def main_worker():
    spec = json.loads(Path(sys.argv[1]).read_text())
    rank = int(os.environ.get("RANK", "0"))
    if spec.get("record_scored"):
        record_scored(Path(spec["out"]), rank)
    done = []
    for argv in spec["commands"]:
        main(argv)
        import torch.distributed as dist

        dist.barrier()
        done.append(argv[:2])
        Path(spec["out"], f"seen-eval-rank{rank}.json").write_text(json.dumps(done))


if __name__ == "__main__":
    main_worker()
