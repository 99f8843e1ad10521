"""scripts/vision_mechanism_stats.py refuses an --out it cannot write before it reads any seed, and a seed whose files
are broken in one line; seeds kept by an earlier session join without their runs (the summary itself is tested end
to end in test_measure_vision_mechanism_script.py)."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "vision_mechanism_stats.py"


def test_an_out_that_cannot_be_written_is_refused_first(tmp_path):
    (tmp_path / "a-file").write_text("not a folder\n")
    out = tmp_path / "a-file" / "stats.json"
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "no-runs"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1  # not "no finished seed"
    assert done.stderr == f"error: cannot write to output directory {out.parent}: File exists\n"


def test_a_broken_results_file_is_one_error_line(tmp_path):
    evaluate = tmp_path / "runs" / "s0" / "evaluate" / "20260101-000000-vision-evaluate"
    evaluate.mkdir(parents=True)
    (evaluate / "results.json").write_text('{"base-greedy": ')  # cut short
    out = tmp_path / "stats.json"
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "runs"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.startswith(f"error: cannot read {evaluate / 'results.json'}: Expecting")
    assert len(done.stderr.splitlines()) == 1 and not out.exists()


def test_an_unfinished_seed_is_named_not_silently_left_out(tmp_path):
    for seed in ("s0", "s2"):  # s2 still training: a timings file, no evaluate run
        (tmp_path / "runs" / seed).mkdir(parents=True)
        (tmp_path / "runs" / seed / "timings.txt").write_text("2026-12-01T10:00:00 train start load=1.00\n")
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "runs"), "--out", str(tmp_path / "stats.json")],
                          capture_output=True, text=True, timeout=120)
    lines = done.stderr.splitlines()
    assert done.returncode == 1 and not (tmp_path / "stats.json").exists()
    assert lines[:2] == [f"warning: {tmp_path / 'runs' / s} has no scored conditions yet (evaluate/*/results.json); "
                         "left out of the summary" for s in ("s0", "s2")]
    assert lines[2:] == [f"error: no finished seed (sN/evaluate/*/results.json) under {tmp_path / 'runs'}"]


def test_a_seed_costs_its_finished_steps_not_the_time_between_runs(tmp_path):
    import runpy

    step_minutes = runpy.run_path(str(SCRIPT), run_name="imported_by_test")["step_minutes"]
    (tmp_path / "timings.txt").write_text(
        "2026-12-01T10:00:00 train start load=1.00\n"
        "2026-12-01T10:30:00 train done mech/s0/train/20261201-100000-vision-train load=1.00\n"
        "2026-12-01T10:30:00 complete base-greedy start load=1.00\n"
        "2026-12-01T10:31:30 complete base-greedy done load=1.00\n"
        "2026-12-01T10:31:30 seed done load=1.00\n"
        "2026-12-01T18:00:00 evaluate start load=3.00\n"  # stopped before its done: not counted
        "2026-12-01T18:20:00 evaluate start load=2.00\n"
        "2026-12-01T18:21:00 evaluate done load=2.00\n"
        "2026-12-01T18:21:00 evaluate-fid start load=2.00\n"
        "2026-12-01T18:50:00 evaluate-fid done load=2.00\n")
    assert step_minutes(tmp_path) == {"train": 30.0, "complete base-greedy": 1.5, "evaluate": 1.0, "evaluate-fid": 29.0}
    assert step_minutes(tmp_path / "nowhere") == {}


def test_a_resumed_training_counts_the_work_its_checkpoints_kept(tmp_path):
    """measure_vision_mechanism.sh stamps "train stopped STEP" at the time the checkpoint it resumes from was saved:
    start to that checkpoint, then resume to done, count; the steps lost after the checkpoint and the hours no
    session ran do not, nor a second stop before any new checkpoint."""
    import runpy

    step_minutes = runpy.run_path(str(SCRIPT), run_name="imported_by_test")["step_minutes"]
    (tmp_path / "timings.txt").write_text(
        "2026-12-01T23:00:00 train start load=1.00\n"
        "2026-12-02T01:20:00 train stopped step-000012500\n"
        "2026-12-02T02:00:00 train resume mech/s0/train/20261201-230000-vision-train load=0.50\n"
        "2026-12-02T01:20:00 train stopped step-000012500\n"  # killed again before its next checkpoint
        "2026-12-02T02:30:00 train resume mech/s0/train/20261201-230000-vision-train load=0.50\n"
        "2026-12-02T03:00:00 train done mech/s0/train/20261201-230000-vision-train load=1.00\n")
    assert step_minutes(tmp_path) == {"train": 140.0 + 30.0}


def kept_seed(folder: Path, name: str, per_image: dict | None, means: dict) -> None:
    """A seed as --keep writes it: its summary (the conditions' means) and its per-image values, or none."""
    folder.mkdir(parents=True, exist_ok=True)
    conditions = {c: {"seq_rep_4": m} for c, m in means.items()}
    items = None if per_image is None else {c: {"seq_rep_4": v} for c, v in per_image.items()}
    (folder / f"{name}.json.gz").write_bytes(gzip.compress(json.dumps({"summary": {"conditions": conditions},
                                                                       "items": items}).encode()))


def read_kept(path: Path) -> dict:
    return json.loads(gzip.decompress(path.read_bytes()))


def test_seeds_kept_or_summarised_earlier_join_without_their_runs(tmp_path):
    """A later session has none of the earlier seeds' runs: the seeds it kept (--keep) and the per-seed summaries of
    an older stats file (--add-summaries, no per-image values) join the per-seed differences; only the seeds with
    per-image values join the image-level bootstrap."""

    keep, out = tmp_path / "kept", tmp_path / "stats.json"
    per_image = {"hyperfitted-greedy": [0.3, 0.4, 0.5], "base-greedy": [0.9, 0.9, 0.9],
                 "base-temperature-d0": [0.8, 0.8, 0.8], "base-temperature-d1": [0.6, 0.6, 0.6]}
    kept_seed(keep, "s2", per_image, {c: sum(v) / 3 for c, v in per_image.items()})
    older = {"per_seed": {"s0": {"conditions": {"hyperfitted-greedy": {"seq_rep_4": 0.5},
                                                "base-greedy": {"seq_rep_4": 0.9},
                                                "base-temperature-d0": {"seq_rep_4": 0.7},
                                                "base-temperature-d1": {"seq_rep_4": 0.7}},
                                 # a LoRA run that was still training when the older file was written
                                 "train": {"hyperfitted": {"epochs": 9}, "lora-last1": {"epochs": 4}}}}}
    (tmp_path / "old.json").write_text(json.dumps(older))
    kept_s2 = (keep / "s2.json.gz").read_bytes()

    def stats(*extra):
        return subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "no-runs"), "--keep", str(keep), "--out",
                               str(out), *extra], capture_output=True, text=True, timeout=120)

    refused = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "no-runs"), "--out", str(out),
                              "--add-summaries", str(tmp_path / "old.json")],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1 and not out.exists()
    assert refused.stderr.startswith("error: --add-summaries needs --keep")

    done = stats("--add-summaries", str(tmp_path / "old.json"))
    assert done.returncode == 0, done.stderr
    first = json.loads(out.read_text())
    assert first["seeds"] == ["s0", "s2"] and first["image_seeds"] == ["s2"]
    differences = {(r["b"], r["metric"]): r for r in first["seed_differences"]}
    greedy = differences[("base-greedy", "seq_rep_4")]
    assert greedy["per_seed"] == {"s0": pytest.approx(-0.4), "s2": pytest.approx(-0.5)}
    assert greedy["mean"] == pytest.approx(-0.45) and greedy["negative"] == 2 and greedy["seeds"] == 2
    assert differences[("base-temperature-mean", "seq_rep_4")]["per_seed"] == {"s0": pytest.approx(-0.2),
                                                                               "s2": pytest.approx(-0.3)}
    paired = {(c["b"], c["metric"]): c["result"] for c in first["comparisons"]}
    assert paired[("base-greedy", "seq_rep_4")]["seeds"] == 1 and paired[("base-greedy", "seq_rep_4")]["prompts"] == 3
    assert paired[("base-greedy", "seq_rep_4")]["mean"] == pytest.approx(-0.5)
    assert paired[("base-temperature-mean", "seq_rep_4")]["mean"] == pytest.approx(-0.3)
    # the older summary is kept too (without per-image values; its unscored LoRA run's loss left out, as for runs);
    # the kept seed is not rewritten
    assert read_kept(keep / "s0.json.gz") == {"summary": {**older["per_seed"]["s0"],
                                                          "train": {"hyperfitted": {"epochs": 9}}}, "items": None}
    assert (keep / "s2.json.gz").read_bytes() == kept_s2

    again = stats()  # the kept folder alone gives the same summary
    assert again.returncode == 0, again.stderr
    second = json.loads(out.read_text())
    assert {k: v for k, v in second.items() if k != "command"} == {k: v for k, v in first.items() if k != "command"}


def test_a_condition_one_seed_ran_is_compared_image_by_image_on_that_seed(tmp_path):
    """A LoRA K run on seed 2 only (each is hours): its image-level comparison is over seed 2, not left out because
    seed 3 has none; a condition both seeds ran is compared over both."""
    keep, out = tmp_path / "kept", tmp_path / "stats.json"
    s2 = {"hyperfitted-greedy": [0.3, 0.4, 0.5], "base-greedy": [0.9, 0.9, 0.9], "lora-last2": [0.7, 0.8, 0.9]}
    s3 = {"hyperfitted-greedy": [0.4, 0.4, 0.4], "base-greedy": [0.8, 0.9, 1.0]}
    for name, per_image in (("s2", s2), ("s3", s3)):
        kept_seed(keep, name, per_image, {c: sum(v) / 3 for c, v in per_image.items()})
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "no-runs"), "--keep", str(keep), "--out",
                           str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    paired = {c["b"]: c for c in json.loads(out.read_text())["comparisons"] if c["metric"] == "seq_rep_4"}
    assert paired["lora-last2"]["image_seeds"] == ["s2"] and paired["lora-last2"]["result"]["seeds"] == 1
    assert paired["lora-last2"]["result"]["mean"] == pytest.approx(-0.4)
    assert paired["base-greedy"]["image_seeds"] == ["s2", "s3"] and paired["base-greedy"]["result"]["seeds"] == 2
    assert paired["base-greedy"]["result"]["mean"] == pytest.approx(-0.5)


@pytest.mark.parametrize("content, says", [
    (gzip.compress(b'{"conditions": {}}'), "is not a kept seed (summary and items; written by --keep)"),  # a summary
    (b'{"summary": {}, "items": null}', "cannot read"),  # not gzipped
    (gzip.compress(b'{"summary": {}, "items": null}')[:-6], "cannot read"),  # cut short
])
def test_a_kept_file_of_another_shape_is_one_error_line(tmp_path, content, says):
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "s0.json.gz").write_bytes(content)
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "no-runs"), "--keep", str(tmp_path / "kept"),
                           "--out", str(tmp_path / "stats.json")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and not (tmp_path / "stats.json").exists()
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"error: {tmp_path / 'kept' / 's0.json.gz'} {says}" if "kept seed" in says
                                  else f"error: {says} {tmp_path / 'kept' / 's0.json.gz'}: ")


def test_an_older_stats_file_of_another_shape_is_one_error_line(tmp_path):
    (tmp_path / "old.json").write_text(json.dumps({"per_seed": {"seed-0": {"conditions": {}}}}))
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "no-runs"), "--keep", str(tmp_path / "kept"),
                           "--add-summaries", str(tmp_path / "old.json"), "--out", str(tmp_path / "stats.json")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and not (tmp_path / "stats.json").exists()
    assert not list((tmp_path / "kept").glob("*.json.gz"))
    assert done.stderr == (f"error: {tmp_path / 'old.json'}: per_seed/seed-0 is not a seed's summary "
                           "(written by this script's --out)\n")
