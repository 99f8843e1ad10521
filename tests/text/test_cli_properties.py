"""Property-based (hypothesis) over text generate options: bad combinations exit 2 with one line and leave no
run dir; good ones run."""


import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hyperfit_core.cli import main
from tests.cli_outcome import assert_outcome


@pytest.fixture(scope="module")
def text_train_run(tiny_llama_dir, corpus_txt, tmp_path_factory):
    out = tmp_path_factory.mktemp("text-runs")
    try:
        main(["text", "train", "--model", str(tiny_llama_dir), "--data", str(corpus_txt), "--num-train", "8",
              "--window", "32", "--num-eval", "6", "--context", "16", "--reference", "16", "--epochs", "1",
              "--out", str(out)])
    except SystemExit as exc:
        assert exc.code in (0, None)
    return next(p for p in out.iterdir() if p.is_dir())


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(num_eval=st.sampled_from(["0", "2", "6", "7", "all"]), new=st.sampled_from(["0", "8", "1000"]),
       blocker=st.sampled_from([[], ["--blocker"], ["--blocker", "--blocker-n", "0"]]),
       prompts=st.sampled_from(["train run", "file", "missing file"]))
def test_text_generate_options(num_eval, new, blocker, prompts, text_train_run, tmp_path_factory, capsys):
    tmp = tmp_path_factory.mktemp("gen")
    out = tmp / "out"
    source = []
    if prompts == "file":
        (tmp / "p.txt").write_text("the cat sat on the mat and then it ran far away from the dog\n" * 3)
        source = ["--prompts", str(tmp / "p.txt"), "--context", "4"]
    elif prompts == "missing file":
        source = ["--prompts", str(tmp / "nope.txt")]
    available = 3 if prompts == "file" else 6
    good = new == "8" and blocker != ["--blocker", "--blocker-n", "0"] and prompts != "missing file" and \
        (num_eval == "all" or 1 <= int(num_eval) <= available)
    assert_outcome(["text", "generate", "--model", str(text_train_run / "model"), "--num-eval", num_eval,
                    "--max-new-tokens", new, *blocker, *source], good, out, capsys)
