"""One CLI call judged the way the standards say: a good input runs and makes exactly one run dir; a bad one
exits 2 with one `error:` line and leaves no run dir."""

from pathlib import Path

from hyperfit_core.cli import main


def run_dirs(out: Path) -> list[Path]:
    return [p for p in out.iterdir() if p.is_dir()] if out.exists() else []


def assert_outcome(args: list[str], good: bool, out: Path, capsys) -> None:
    capsys.readouterr()
    try:
        main([*args, "--out", str(out)])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    err = capsys.readouterr().err
    if good:
        assert code == 0, err
        assert len(run_dirs(out)) == 1
    else:
        assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
        assert run_dirs(out) == []


def ok_run(args: list[str], capsys) -> Path:
    """A good CLI call: it exits 0 (or returns), and the last line it prints is the run dir it made."""
    capsys.readouterr()
    try:
        main(args)
    except SystemExit as exc:  # click may exit 0 explicitly
        assert exc.code in (0, None), capsys.readouterr().err
    return Path(capsys.readouterr().out.strip().splitlines()[-1])
