#!/usr/bin/env python
"""The paper's data-influence experiments and its long-sequence text comparison (issue #13), thin over the library.

Every run is the one recipe (hyperfit_core.recipe via hyperfit_text.training.train_text /
hyperfit_vision.training.train_images); text continuations are `hyperfit text generate` runs
(hyperfit_text.generation.generate_run) scored by `hyperfit text evaluate` (hyperfit_text.evaluate.evaluate_runs);
image completions are hyperfit_vision.completion.complete_run scored by hyperfit_vision.scoring.score_images; top-1
agreement is hyperfit_core.analysis.prediction_stats + hyperfit_core.influence.pairwise_agreement.

  text-length   base greedy / base top-p / hyperfitted greedy / + blocker at the paper's length (256-token windows,
                256-token continuations, TTR over the last 96), one train run per seed, mean +- sd over seeds
                (--collect EVAL_RUN... aggregates `hyperfit text evaluate` runs made by hand instead)
  determinacy   the same data hyperfitted with several order seeds and with Shuffle-1 (one swapped pair per epoch
                against the first order seed): pairwise top-1 agreement on held-out data, spread of TTR/repetition
  quantity      N items at a constant number of update steps (--steps): TTR / repetition vs N
  type          (text) hyperfit on each corpus, greedy continuations of held-out prompts of every corpus

Each writes OUT/<experiment>.json and OUT/<experiment>.png (and copies the JSON to --json when given). Runs are
reused when their model/ already exists, so an interrupted sweep continues. Examples (docs/influence.md has the
measured ones):

  python scripts/data_influence.py determinacy --modality vision --model assets/fashion-base \\
      --data fashion-mnist --data-root data --num-train 64 --steps 400 --lr 1e-3 --order-seeds 0 1 2 --out runs/det
  python scripts/data_influence.py quantity --modality vision --model assets/fashion-base --data fashion-mnist \\
      --sizes 8 16 32 64 128 256 512 2000 --steps 400 --lr 1e-3 --out runs/qty
  python scripts/data_influence.py text-length --model data/text/smollm2-hf --data data/text/wikipedia.txt \\
      --seeds 0 1 2 --num-train 8 --window 256 --num-eval 8 --new-tokens 256 --epochs 12 --lr 2e-4 --out runs/len
  python scripts/data_influence.py type --model data/text/smollm2-hf --corpus wikipedia=data/text/wikipedia.txt \\
      --corpus news=data/text/news.txt --corpus fiction=data/text/fiction.txt --out runs/type
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from hyperfit_core import metric_registry as registry
from hyperfit_core.analysis import prediction_stats
from hyperfit_core.atomic import write_json
from hyperfit_core.decoding import DecodingConfig
from hyperfit_core.formats import (COMPLETIONS, GENERATIONS, PROMPTS, RESULTS, RUN_CONFIG, condition_file,
                                   read_run_config)
from hyperfit_core.influence import aggregate, epochs_for_steps, mean_sd, pairwise_agreement, plot_matrix, plot_series
from hyperfit_core.options import COUNT, POSITIVE, SEED
from hyperfit_core.recipe import TrainSpec
from hyperfit_core.rundir import RunDir
from hyperfit_core.train import TrainConfig

# the metrics each experiment aggregates and plots (registered keys; hyperfit_core/metric_list.py)
TEXT_METRICS = ("type_token_ratio", registry.key("self_bleu{order}", order=4), registry.key("seq_rep_{n}", n=4))
TEXT_RECORD = TEXT_METRICS + ("word_type_token_ratio", registry.key("dataset_bleu{order}", order=4),
                              "overlap_mean_span", "overlap_max_span", "perplexity", "entropy_mean")
VISION_METRICS = ("type_token_ratio", registry.key("seq_rep_{n}", n=4), "row_repetition", "patch_duplication",
                  "overlap_mean_span")
CONDITIONS = ("base-greedy", "base-top-p", "hyperfitted-greedy", "hyperfitted-greedy-blocked5")


# ---------------------------------------------------------------- text ------------------------------------------

class Text:
    """Text side: train runs of `hyperfit text train`, continuations of `hyperfit text generate`, scores of
    `hyperfit text evaluate`."""

    metrics = TEXT_METRICS

    def __init__(self, args):
        self.args = args

    def train(self, path: Path, num_train: int, *, seed: int, data_seed: int, order_seed: int, swaps: int = 0,
              epochs: int | None = None, max_steps: int | None = None, data: str | None = None) -> Path:
        from hyperfit_text.data import TextSource
        from hyperfit_text.training import train_text

        a = self.args
        if not (path / "model").is_dir():
            if path.exists():
                shutil.rmtree(path)  # an interrupted text run: start it again (its checkpoint is the 135M model's)
            spec = TrainSpec(model=a.model, data=vars(TextSource(data or a.data)), num_train=num_train,
                             data_seed=data_seed,
                             train=TrainConfig(lr=a.lr, epochs=epochs or a.epochs, batch_size=a.batch_size, seed=seed,
                                               order_seed=order_seed, shuffle_swaps=swaps, max_steps=max_steps,
                                               target_loss=a.target_loss, device=a.device, save_every=10_000,
                                               progress=False),
                             options={"window": a.window, "num_eval": a.num_eval, "context": a.context,
                                      "reference": a.reference})
            train_text(spec, at=path, command=" ".join(sys.argv))
        return path

    def held_out(self, run: Path) -> tuple[torch.Tensor, int]:
        from hyperfit_text.splits import HeldOut

        held, metadata = HeldOut.load(run / PROMPTS)
        bos = torch.full((len(held), 1), int(metadata["bos_id"]), dtype=torch.long)
        return torch.cat([bos, held.contexts, held.references], dim=1), 1 + held.contexts.shape[1]

    def load(self, model_path: str):
        from hyperfit_text.model import load_text_model

        return load_text_model(model_path, device=self.args.device).model

    def generate(self, run: Path, model: str, out: Path, name: str, decoding: DecodingConfig | None = None,
                 blocker: bool = False, prompts_from: str | None = None) -> Path:
        """One `text generate` run (reused if OUT/NAME already holds one); returns its run dir."""
        from hyperfit_text.generation import GenerateSpec, generate_run

        target = out / name
        done = list(target.glob(f"*/*.{GENERATIONS}")) if target.is_dir() else []
        if done:
            return done[0].parent
        a = self.args
        spec = GenerateSpec(model=model, train_run=str(run), max_new_tokens=a.new_tokens, num_eval=a.num_eval,
                            decoding=decoding or DecodingConfig(), blocker=blocker, batch_size=a.decode_batch,
                            device=a.device, name=name, prompts_from=prompts_from, context=a.context,
                            prompt_seed=a.prompt_seed)
        return generate_run(spec, out=target).path

    def score(self, gen_runs: list[Path], out: Path) -> dict:
        """`text evaluate` of the generate runs: {condition: its results.json entry}, plus "human reference"."""
        from hyperfit_text.evaluate import EvalSettings, evaluate_runs

        a = self.args
        settings = EvalSettings(ttr_last=a.ttr_last, analysis=a.analysis, device=a.device,
                                lengths=tuple(x for x in (32, 64, 96, 128, 192, 256) if x <= a.new_tokens))
        run = evaluate_runs([str(p) for p in gen_runs], settings, out=out)
        results = json.loads((run.path / RESULTS).read_text())
        scored = dict(results["runs"])
        if results.get("human_reference"):
            scored["human reference"] = results["human_reference"]
        return scored

    def flat(self, entry: dict) -> dict:
        """An evaluate results entry (this version's or an older one's key spellings) as {registered key: value}."""
        out = {}
        for results_key in TEXT_RECORD:
            metric, params = registry.lookup(results_key)
            record = (entry.get("analysis") or {}) if registry.MODEL in metric.needs else entry
            out[results_key] = registry.read(record, metric.name, last=self.args.ttr_last, **params)
        return out

    def greedy(self, run: Path, out: Path, name: str) -> dict:
        gen = self.generate(run, str(run / "model"), out / "gen", name)
        return self.flat(self.score([gen], out / "eval" / name)[name])


# ---------------------------------------------------------------- vision ----------------------------------------

class Vision:
    """Vision side: train runs of `hyperfit vision train`, greedy completions of held-out test images from their
    top 25%, token / patch repetition of the generated 75% (hyperfit_vision.scoring.score_images)."""

    metrics = VISION_METRICS

    def __init__(self, args):
        self.args = args
        self._images = None

    def source(self, split: str) -> dict:
        from hyperfit_vision.data import ImageSource

        return vars(ImageSource(self.args.data, self.args.data_root, split))

    def train(self, path: Path, num_train: int, *, seed: int, data_seed: int, order_seed: int, swaps: int = 0,
              epochs: int | None = None, max_steps: int | None = None, data: str | None = None) -> Path:
        from hyperfit_vision.training import train_images

        a = self.args
        if (path / RUN_CONFIG).is_file() and not (path / "model").is_dir():
            train_images(None, resume=path)
        elif not (path / "model").is_dir():
            spec = TrainSpec(model=a.model, data=self.source("train"), num_train=num_train, data_seed=data_seed,
                             train=TrainConfig(lr=a.lr, epochs=epochs or a.epochs, batch_size=a.batch_size,
                                               seed=seed, order_seed=order_seed, shuffle_swaps=swaps,
                                               max_steps=max_steps, device=a.device, save_every=10_000,
                                               progress=False))
            train_images(spec, at=path, command=" ".join(sys.argv))
        return path

    def images(self):
        from hyperfit_vision.data import ImageSource

        if self._images is None:
            self._images = ImageSource(**self.source(self.args.eval_split)).load().first(self.args.num_eval,
                                                                                         "held-out images")
        return self._images

    def image_model(self, model_path: str):
        from hyperfit_vision.model import load_imagegpt

        return load_imagegpt(model_path)[0]

    def held_out(self, run: Path) -> tuple[torch.Tensor, int]:
        from hyperfit_vision.completion import prefix_rows_for
        from hyperfit_vision.training import image_sequences

        model = self.image_model(str(run / "model"))
        ids = image_sequences(self.images(), model).ids
        return ids, 1 + prefix_rows_for(0.25, model.side) * model.side

    def load(self, model_path: str):
        return self.image_model(model_path).model

    def greedy(self, run: Path, out: Path, name: str) -> dict:
        from hyperfit_core.recipe import load_train_tokens
        from hyperfit_vision.completion import complete_run, load_completions
        from hyperfit_vision.scoring import score_images

        target = RunDir(out / "complete" / name)
        if not condition_file(target.path, "greedy", COMPLETIONS).is_file():
            complete_run(self.image_model(str(run / "model")), self.images(), 0.25, DecodingConfig(), target,
                         "greedy", device=self.args.device)
        data = load_completions(condition_file(target.path, "greedy", COMPLETIONS))
        # copying: the longest run of generated pixels (raster order) that also occurs in a training image, and
        # the same for the real test images (flat backgrounds match long runs of any training image)
        sides = score_images(data, load_train_tokens(run).ids[:, 1:], real_copying=True)
        scores = dict(sides["generated"].values)
        scores.update({registry.REAL_PREFIX + key: value for key, value in sides["real"].values.items()})
        side = int(data["real_tokens"].shape[1] ** 0.5)
        scores["overlap_generated_pixels"] = data["tokens"].shape[1] - int(data["prefix_rows"]) * side
        return scores


def side_for(args):
    return Vision(args) if args.modality == "vision" else Text(args)


def final_loss(run: Path) -> float | None:
    epochs = [r for r in RunDir(run).read_metrics() if r.get("event") == "epoch"]
    return epochs[-1]["mean_loss"] if epochs else None


def steps_done(run: Path) -> int | None:
    steps = [r for r in RunDir(run).read_metrics() if r.get("event") == "step"]
    return steps[-1].get("step") if steps else None


def finish(args, name: str, result: dict, started: float) -> None:
    previous = Path(args.out) / f"{name}.json"
    if previous.is_file():  # a rerun reuses the trained runs: keep what the earlier invocations cost
        earlier = json.loads(previous.read_text())
        result["earlier_invocations"] = earlier.get("earlier_invocations", []) + [
            {k: earlier.get(k) for k in ("wall_minutes", "cpu_minutes", "cpu_minutes_wall", "command")}]
    result["wall_minutes"] = round((time.time() - started) / 60, 2)  # on shared cores: more than the CPU time
    result["cpu_minutes"] = round(time.process_time() / 60, 2)  # this process, all threads
    result["command"] = " ".join(sys.argv)
    write_json(Path(args.out) / f"{name}.json", result)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(args.out) / f"{name}.json", args.json)
    print(json.dumps({k: v for k, v in result.items() if k in ("summary", "agreement", "matrix")}, indent=1))


# ---------------------------------------------------------------- experiments -----------------------------------

def determinacy(args) -> None:
    started, side, out = time.time(), side_for(args), Path(args.out)
    max_steps = args.steps
    epochs = epochs_for_steps(args.num_train, args.batch_size, args.steps) if args.steps else args.epochs
    runs = {}
    for order in args.order_seeds:
        runs[f"order{order}"] = side.train(out / f"order{order}", args.num_train, seed=args.seed,
                                           data_seed=args.data_seed, order_seed=order, epochs=epochs,
                                           max_steps=max_steps)
    first = args.order_seeds[0]
    runs[f"order{first}-shuffle1"] = side.train(out / f"order{first}-shuffle1", args.num_train, seed=args.seed,
                                                data_seed=args.data_seed, order_seed=first, swaps=1,
                                                epochs=epochs, max_steps=max_steps)
    ids, context_len = side.held_out(next(iter(runs.values())))
    top1 = {name: prediction_stats(side.load(str(run / "model")), ids, context_len)["top1_token"]
            for name, run in runs.items()}
    pairs = pairwise_agreement(top1)
    shuffle_name = f"order{first}-shuffle1"
    shuffle = [p for p in pairs if {p["a"], p["b"]} == {f"order{first}", shuffle_name}]
    different = [p["agreement"] for p in pairs if shuffle_name not in (p["a"], p["b"])]
    per_run = {name: {**side.greedy(run, out, name), "final_loss": final_loss(run), "steps": steps_done(run)}
               for name, run in runs.items()}
    orders = [per_run[f"order{o}"] for o in args.order_seeds]
    result = {"experiment": "determinacy", "modality": args.modality, "num_train": args.num_train,
              "data_seed": args.data_seed, "seed": args.seed, "order_seeds": args.order_seeds,
              "steps": max_steps, "epochs": epochs, "lr": args.lr, "held_out_positions": int(top1[shuffle_name].numel()),
              "agreement": {"pairs": pairs, "shuffle1_vs_order": shuffle[0]["agreement"],
                            "different_orders": mean_sd(different)},
              "runs": per_run, "summary": {"across_orders": aggregate(orders, list(side.metrics) + ["final_loss"]),
                                           "shuffle1": per_run[shuffle_name]}}
    names = list(runs)
    matrix = [[1.0 if a == b else next(p["agreement"] for p in pairs if {p["a"], p["b"]} == {a, b}) for b in names]
              for a in names]
    plot_matrix({"top-1 agreement": matrix}, names, names, out / "determinacy.png")
    finish(args, "determinacy", result, started)


def quantity(args) -> None:
    started, side, out = time.time(), side_for(args), Path(args.out)
    points = {}
    for n in args.sizes:
        epochs = epochs_for_steps(n, args.batch_size, args.steps)
        per_seed = []
        for seed in args.seeds:
            run = side.train(out / f"n{n}-s{seed}", n, seed=seed, data_seed=seed, order_seed=seed, epochs=epochs,
                             max_steps=args.steps)
            per_seed.append({**side.greedy(run, out, f"n{n}-s{seed}"), "final_loss": final_loss(run),
                             "steps": steps_done(run)})
        points[n] = {"epochs": epochs, "seeds": per_seed,
                     "summary": aggregate(per_seed, list(side.metrics) + ["final_loss"])}
    panels = {metric: {args.modality: {n: points[n]["summary"][metric] for n in points}}
              for metric in list(side.metrics) + ["final_loss"]}
    plot_series(panels, out / "quantity.png", "hyperfitting items N (constant steps)", logx=True,
                title=f"{args.steps} update steps of batch {args.batch_size}, seeds {args.seeds}")
    result = {"experiment": "quantity", "modality": args.modality, "sizes": args.sizes, "steps": args.steps,
              "batch_size": args.batch_size, "lr": args.lr, "seeds": args.seeds, "points": points,
              "summary": {n: {k: v["mean"] for k, v in points[n]["summary"].items()} for n in points}}
    finish(args, "quantity", result, started)


def corpus_type(args) -> None:
    started, side, out = time.time(), Text(args), Path(args.out)
    corpora = dict(item.split("=", 1) for item in args.corpus)
    cells = {}
    for train_name, train_path in corpora.items():
        run = side.train(out / f"train-{train_name}", args.num_train, seed=args.seed, data_seed=args.seed,
                         order_seed=args.seed, data=train_path)
        for eval_name, eval_path in corpora.items():
            name = f"{train_name}-on-{eval_name}"
            gen = side.generate(run, str(run / "model"), out / "gen", name, prompts_from=eval_path)
            cells[name] = {**side.flat(side.score([gen], out / "eval" / name)[name]), "final_loss": final_loss(run)}
    names = list(corpora)
    matrices = {metric: [[cells[f"{a}-on-{b}"][metric] for b in names] for a in names] for metric in TEXT_METRICS}
    plot_matrix(matrices, names, names, out / "type.png", "hyperfitted on", "prompts from")
    result = {"experiment": "type", "corpora": corpora, "num_train": args.num_train, "seed": args.seed,
              "rows": "hyperfitting corpus", "columns": "prompt corpus", "names": names, "cells": cells,
              "matrix": matrices}
    finish(args, "type", result, started)


def text_length(args) -> None:
    started, side, out = time.time(), Text(args), Path(args.out)
    scored = []
    if args.collect:
        for path in args.collect:
            results = json.loads((Path(path) / RESULTS).read_text())
            window = results.get("settings", {}).get("ttr_last", args.ttr_last)
            if window != args.ttr_last:
                raise SystemExit(f"error: {path} measured TTR over the last {window} tokens, not --ttr-last "
                                 f"{args.ttr_last}")
            entry = {**results["runs"], "human reference": results["human_reference"]}
            fitted = [e for e in results["runs"].values() if "hyperfitted" in Path(e["file"]).name]
            if fitted:  # the train run the hyperfitted model came from, as its generate run recorded it
                config = read_run_config(Path(fitted[0]["file"]).parent)["config"]
                entry["train_loss"] = final_loss(Path(config["train_run"]))
            scored.append(entry)
    else:
        for seed in args.seeds:
            where = out / f"seed{seed}"
            run = side.train(where / "train", args.num_train, seed=seed, data_seed=seed, order_seed=seed)
            gens = [side.generate(run, args.model, where / "gen", "base-greedy"),
                    side.generate(run, args.model, where / "gen", "base-top-p", DecodingConfig.paper_top_p(seed)),
                    side.generate(run, str(run / "model"), where / "gen", "hyperfitted-greedy"),
                    side.generate(run, str(run / "model"), where / "gen", "hyperfitted-greedy-blocked5",
                                  blocker=True)]
            entry = side.score(gens, where / "eval")
            entry["train_loss"] = final_loss(run)
            scored.append(entry)
    conditions = [c for c in scored[0] if isinstance(scored[0][c], dict)]
    per_seed = [{c: side.flat(entry[c]) for c in conditions} for entry in scored]
    summary = {c: aggregate([s[c] for s in per_seed], TEXT_RECORD) for c in conditions}
    curves = {c: {L: mean_sd([registry.read(entry[c]["length_curve"][L], "type_token_ratio") for entry in scored])
                  for L in scored[0][c]["length_curve"]} for c in conditions}
    plot_series({"TTR of the first L tokens": curves}, out / "text_length.png", "continuation length L (tokens)",
                title=f"{len(scored)} seed(s); TTR of the last {args.ttr_last} of {args.new_tokens} tokens in JSON")
    result = {"experiment": "text-length", "ttr_last": args.ttr_last, "seeds": args.seeds if not args.collect else None,
              "collected": args.collect, "per_seed": per_seed, "summary": summary, "ttr_curve": curves,
              "train_loss": mean_sd([entry.get("train_loss") for entry in scored])}
    finish(args, "text_length", result, started)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=("text-length", "determinacy", "quantity", "type"))
    parser.add_argument("--modality", choices=("text", "vision"), default="text")
    parser.add_argument("--model", required=False, help="base model (text: HF folder / hub id; vision: ImageGPT)")
    parser.add_argument("--data", help="text: corpus file; vision: fashion-mnist / cifar10 / an image folder")
    parser.add_argument("--data-root", default="data", help="vision: torchvision root")
    parser.add_argument("--eval-split", default="test", help="vision: split of the held-out images")
    parser.add_argument("--corpus", action="append", default=[], help="type: NAME=FILE (repeat)")
    parser.add_argument("--num-train", type=COUNT, default=16)
    parser.add_argument("--num-eval", type=COUNT, default=16, help="held-out prompts / images")
    parser.add_argument("--sizes", type=COUNT, nargs="+", default=[8, 16, 32, 64, 128])
    parser.add_argument("--seeds", type=SEED, nargs="+", default=[0])
    parser.add_argument("--seed", type=SEED, default=0)
    parser.add_argument("--data-seed", type=SEED, default=0)
    parser.add_argument("--order-seeds", type=SEED, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=COUNT, help="update steps per run (quantity: required; determinacy: optional)")
    parser.add_argument("--epochs", type=COUNT, default=20)
    parser.add_argument("--lr", type=POSITIVE, default=1e-4)
    parser.add_argument("--batch-size", type=COUNT, default=8)
    parser.add_argument("--target-loss", type=POSITIVE)
    parser.add_argument("--window", type=COUNT, default=256)
    parser.add_argument("--context", type=COUNT, default=32)
    parser.add_argument("--reference", type=COUNT, default=256)
    parser.add_argument("--new-tokens", type=COUNT, default=256)
    parser.add_argument("--ttr-last", type=COUNT, default=96)
    parser.add_argument("--prompt-seed", type=SEED, default=0)
    parser.add_argument("--decode-batch", type=COUNT, default=32)
    parser.add_argument("--analysis", action="store_true", help="text-length: also held-out entropy / perplexity")
    parser.add_argument("--collect", nargs="+", help="text-length: aggregate these `text evaluate` runs instead")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="runs/influence")
    parser.add_argument("--json", help="also copy the result JSON here (e.g. docs/measurements/influence_*.json)")
    args = parser.parse_args(argv)
    if args.experiment == "quantity" and not args.steps:
        parser.error("quantity needs --steps (the constant number of update steps)")
    if args.experiment == "type" and len(args.corpus) < 1:
        parser.error("type needs --corpus NAME=FILE (repeat for each corpus)")
    if args.experiment in ("text-length", "type"):
        args.modality = "text"
    if not args.collect and not args.model:
        parser.error("--model is required")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    {"text-length": text_length, "determinacy": determinacy, "quantity": quantity, "type": corpus_type}[
        args.experiment](args)


if __name__ == "__main__":
    main()
