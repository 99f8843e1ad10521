"""Property-based (hypothesis) over vision train / complete options: bad combinations exit 2 with one line and
leave no run dir; good ones run."""


from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cli_outcome import assert_outcome


COUNTS = st.sampled_from(["-3", "0", "1", "2", "8", "12", "13", "x"])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(num_train=COUNTS, epochs=st.sampled_from(["0", "1", "-1"]), batch=st.sampled_from(["0", "4", "-2"]),
       lr=st.sampled_from(["1e-3", "0", "-1", "abc"]), crop=st.sampled_from(["center", "none", "diagonal"]))
def test_vision_train_options(num_train, epochs, batch, lr, crop, tiny_imagegpt_dir, image_folder_8px, tmp_path_factory,
                              capsys):
    out = tmp_path_factory.mktemp("runs") / "out"
    good = num_train in ("1", "2", "8", "12") and epochs == "1" and batch == "4" and lr == "1e-3" and crop != "diagonal"
    assert_outcome(["vision", "train", "--model", str(tiny_imagegpt_dir), "--data", str(image_folder_8px),
                    "--num-train", num_train, "--epochs", epochs, "--batch-size", batch, "--lr", lr,
                    "--crop", crop], good, out, capsys)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(num_eval=st.sampled_from(["0", "3", "12", "13", "all", "-1"]),
       prefix=st.sampled_from(["0", "0.25", "0.5", "0.99", "1"]),
       decoding=st.sampled_from([[], ["--decoding", "top-p"], ["--top-p", "0.5"], ["--decoding", "sample", "--top-k", "0"]]),
       batch=st.sampled_from(["0", "5"]))
def test_vision_complete_options(num_eval, prefix, decoding, batch, tiny_imagegpt_dir, image_folder_8px,
                                 tmp_path_factory, capsys):
    out = tmp_path_factory.mktemp("runs") / "out"
    good = num_eval in ("3", "12", "all") and prefix in ("0.25", "0.5") and batch == "5" and \
        decoding in ([], ["--decoding", "top-p"])
    assert_outcome(["vision", "complete", "--model", str(tiny_imagegpt_dir), "--data", str(image_folder_8px),
                    "--num-eval", num_eval, "--prefix-fraction", prefix, "--batch-size", batch, *decoding],
                   good, out, capsys)
