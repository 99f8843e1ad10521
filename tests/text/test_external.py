"""`text evaluate` on a JSONL of continuations made outside hyperfit (docs/scale.md's format): a generate run's
own texts, brought back as such a file, score as the run itself does; ragged continuations are cut (said in one
line); a malformed file or a missing --model is one error line, nothing written."""

import json
from pathlib import Path

import pytest

from hyperfit_core import metric_registry as registry
from hyperfit_core.cli import main
from tests.text.test_cli import fails


def _run(argv, capsys):
    capsys.readouterr()
    main(argv)
    captured = capsys.readouterr()
    return Path(captured.out.strip().splitlines()[-1]), captured.err


def _close(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], float):
            assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-9), key
        elif not isinstance(a[key], dict):
            assert a[key] == b[key], key


def test_outside_continuations_score_as_the_run_they_came_from(tiny_llama_dir, corpus_txt, tmp_path, capsys):
    out = tmp_path / "runs"
    generated, _ = _run(["text", "generate", "--model", str(tiny_llama_dir), "--prompts-from", str(corpus_txt),
                         "--num-eval", "4", "--context", "12", "--max-new-tokens", "10", "--out", str(out)], capsys)
    outside = tmp_path / "vllm.jsonl"  # what a server's client would write: only the three texts
    rows = [json.loads(line) for line in (generated / "greedy.generations.jsonl").read_text().splitlines()]
    outside.write_text("".join(json.dumps({"prompt": r["context"], "continuation": r["continuation"],
                                           "reference": r["reference"]}) + "\n" for r in rows))
    own, _ = _run(["text", "evaluate", str(generated), "--ttr-last", "8", "--out", str(out)], capsys)
    brought, err = _run(["text", "evaluate", str(outside), "--model", str(tiny_llama_dir), "--ttr-last", "8",
                         "--out", str(out)], capsys)
    a = json.loads((own / "results.json").read_text())["runs"]["greedy"]
    b = json.loads((brought / "results.json").read_text())["runs"]["vllm"]
    assert b["count"] == 4 and b["new_tokens"] == 10
    _close(a["analysis"], b["analysis"])  # perplexity / entropy on the same [BOS + context + reference]
    # a continuation holding a special token (</s>) comes back as plain text, which encodes to other tokens (a
    # server's output skips special tokens anyway); every other one scores exactly as in the run
    plain = [i for i, r in enumerate(rows) if r["special_tokens"]["continuation"] == 0]
    assert len(plain) >= 2
    per_a = json.loads((own / "per_item.json").read_text())["runs"]["greedy"]
    per_b = json.loads((brought / "per_item.json").read_text())["runs"]["vllm"]
    for key in (registry.key("type_token_ratio"), registry.key("seq_rep_{n}", n=4)):
        assert [per_a[key][i] for i in plain] == pytest.approx([per_b[key][i] for i in plain]), key
    assert ("cut to equal" in err) == (len(plain) < len(rows))


def test_ragged_and_bad_outside_files(tiny_llama_dir, tmp_path, capsys):
    out = tmp_path / "runs"
    ragged = tmp_path / "ragged.jsonl"
    ragged.write_text("\n".join(json.dumps({"context": "the river city", "continuation": words})
                                for words in ("stone light quiet old", "new green", "bright small large")) + "\n")
    run, err = _run(["text", "evaluate", str(ragged), "--model", str(tiny_llama_dir), "--out", str(out)], capsys)
    entry = json.loads((run / "results.json").read_text())["runs"]["ragged"]
    assert entry["new_tokens"] == 2 and entry["external"]["cut"] == {"generated": 2}
    assert "cut to equal token counts (generated to 2)" in err
    assert registry.key("type_token_ratio") in entry and "analysis" not in entry  # no references: no perplexity
    bad_out = tmp_path / "bad"
    fails(["text", "evaluate", str(ragged), "--out", str(bad_out)], capsys, bad_out, "pass --model M")
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"context": "a", "continuation": "b"}) + "\n" + json.dumps({"context": "a"}) + "\n")
    fails(["text", "evaluate", str(broken), "--model", str(tiny_llama_dir), "--out", str(bad_out)], capsys, bad_out,
          f"{broken}:2: no string field 'continuation'")
