#!/usr/bin/env python
"""How long `hyperfit text` takes to load a GGUF model: `hyperfit_text.model.load_text_model` (tokenizer, then
the weights dequantised to float32), timed in a fresh process per repeat, apart from importing torch and
transformers, with the load average it ran under (numbers from a busy machine say so).

    python scripts/measure_gguf_load.py data/text/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --repeats 3 \
        --json docs/measurements/gguf_load.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from hyperfit_core.options import COUNT

# one repeat: imports first, then the load, each timed on its own
_ONE_LOAD = """
import json, sys, time
start = time.perf_counter()
import torch, transformers
from hyperfit_text.model import load_text_model
imported = time.perf_counter()
load_text_model(sys.argv[1], device="cpu")
print(json.dumps({"import_s": imported - start, "load_s": time.perf_counter() - imported}))
"""


def time_loads(gguf: Path, repeats: int) -> list[dict]:
    loads = []
    for _ in range(repeats):
        load_before = os.getloadavg()[0]
        done = subprocess.run([sys.executable, "-c", _ONE_LOAD, str(gguf)], capture_output=True, text=True,
                              check=True)
        loads.append({**json.loads(done.stdout.strip().splitlines()[-1]),
                      "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]}})
    return loads


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gguf", type=Path)
    parser.add_argument("--repeats", type=COUNT, default=3)
    parser.add_argument("--json", type=Path, default=None, help="Write the result here as well as to stdout.")
    args = parser.parse_args(argv)

    from hyperfit_core.atomic import write_json
    from hyperfit_core.rundir import library_versions

    loads = time_loads(args.gguf, args.repeats)
    result = {"command": "python " + " ".join([f"scripts/{Path(__file__).name}", *(argv or sys.argv[1:])]),
              "gguf": args.gguf.name, "gguf_bytes": args.gguf.stat().st_size, "cpu_count": os.cpu_count(),
              "repeats": loads,
              "load_s_median": sorted(r["load_s"] for r in loads)[len(loads) // 2],
              "versions": library_versions()}
    if args.json:  # first: the numbers must not depend on stdout staying open
        write_json(args.json, result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
