"""Tiny completion / generation run dirs written straight to their file formats (no model), and helpers."""

import json
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from hyperfit_core.cli import main, root
from hyperfit_core.formats import write_jsonl
from hyperfit_rate.cli import rate

# Until the package metadata of this branch is installed, the root command learns `rate` here.
root.add_command(rate, "rate")

SCRIPT = "<script>window.__pwned = 1</script><b>bold?</b> & <img src=x onerror=\"window.__pwned=2\">"
CONTEXTS = [f"Prompt number {i}: the weather in the valley was" for i in range(6)]
REFERENCES = [f"mild and dry for most of the week, said the report number {i}." for i in range(6)]


def write_run(folder: Path, command: str, config: dict | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"command": command, "config": config or {}, "seed": 0}))
    (folder / "metrics.jsonl").write_text("")
    return folder


def generation_row(i: int, context: str, continuation: str, reference: str, new_tokens: int = 16,
                   reference_tokens: int = 32, special: int = 0) -> dict:
    """One line as `text generate` writes it: the display texts are what raters see (special tokens left out,
    the reference cut to the continuation's token count); `special` special tokens were in the continuation."""
    return {"index": i, "context": context, "continuation": continuation + "<|im_end|>" * special,
            "reference": reference + " and then some more", "display": {"context": context,
                                                                        "continuation": continuation,
                                                                        "reference": reference},
            "tokens": {"context": 8, "continuation": new_tokens, "reference": reference_tokens},
            "special_tokens": {"context": 0, "continuation": special, "reference": 0}}


def write_generations(run: Path, name: str, continuations, contexts=CONTEXTS, references=REFERENCES,
                      **row_options) -> Path:
    return write_jsonl(run / f"{name}.generations.jsonl",
                       [generation_row(i, c, g, r, **row_options)
                        for i, (c, g, r) in enumerate(zip(contexts, continuations, references))])


def text_run(tmp_path: Path, name: str, continuations, **kwargs) -> Path:
    run = write_run(tmp_path / f"run-{name}", "text generate")
    write_generations(run, name, continuations, **kwargs)
    return run


@pytest.fixture
def text_runs(tmp_path):
    """Two text conditions over six prompts; one continuation is hostile HTML."""
    greedy = [f"the the the the weather weather {i}" for i in range(6)]
    hyper = [f"warm, with a light breeze from the hills ({i})." for i in range(6)]
    hyper[0] = SCRIPT
    return [text_run(tmp_path / "text", "base-greedy", greedy), text_run(tmp_path / "text", "hyperfit-greedy", hyper)]


SIDE, N_IMAGES, PREFIX_ROWS = 8, 4, 2
PALETTE = np.stack([np.linspace(0, 255, 16)] * 3, axis=1).astype(np.float32)


def write_completions(run: Path, name: str, seed: int, real=None, source_index=None) -> Path:
    rng = np.random.default_rng(seed)
    if real is None:
        real = np.random.default_rng(123).integers(0, 16, size=(N_IMAGES, SIDE * SIDE))
    tokens = real.copy()
    tokens[:, PREFIX_ROWS * SIDE:] = rng.integers(0, 16, size=(len(real), (SIDE - PREFIX_ROWS) * SIDE))
    path = run / f"{name}.completions.safetensors"
    save_file({"tokens": tokens.astype(np.int64), "real_tokens": real.astype(np.int64),
               "source_index": np.arange(len(real), dtype=np.int64) if source_index is None else source_index,
               "prefix_rows": np.array(PREFIX_ROWS, dtype=np.int64), "palette": PALETTE}, str(path))
    return path


@pytest.fixture
def image_runs(tmp_path):
    runs = []
    for seed, name in enumerate(["base-greedy", "hyperfit-greedy"]):
        run = write_run(tmp_path / "images" / f"run-{name}", "vision complete")
        write_completions(run, name, seed)
        runs.append(run)
    return runs


@pytest.fixture
def text_study(tmp_path, text_runs):
    from hyperfit_rate.study import BuildOptions, build_study

    study = tmp_path / "text-study"
    build_study(study, text_runs, BuildOptions(seed=1, attention_share=0.2))
    return study


@pytest.fixture
def image_study(tmp_path, image_runs):
    from hyperfit_rate.study import BuildOptions, build_study

    study = tmp_path / "image-study"
    build_study(study, image_runs, BuildOptions(seed=2, attention_share=0.2))
    return study


def run_cli(args, capsys):
    """(exit code, stdout, stderr) of `hyperfit ARGS` in-process."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@contextmanager
def live_server(app):
    """The app on the server `rate serve` runs (waitress), on 127.0.0.1 (free port) in a thread; yields the URL."""
    from hyperfit_rate.server import RatingServer

    server = RatingServer(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()
        thread.join(10)
