#!/usr/bin/env bash
# Installs hyperfit and its test tools into the current Python. torch/torchvision are pinned to the
# releases these machines hold on disk (a looser pin downloads several GB of CUDA wheels).
#   bash scripts/install.sh          # the package
#   bash scripts/install.sh --test   # + what the test suite reads: FID Inception weights, Fashion-MNIST if available,
#                                    #   Debian's chromium + chromium-driver for the rating page's browser test,
#                                    #   and curl for docs/rating.md's API example
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
python3 -m pip install -q -e ".[test]"
# pyenv only exposes new console scripts after a rehash.
if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
if [[ "${1:-}" == "--test" ]]; then
    # tests/rate/test_browser.py drives a real headless chromium; it fails (never skips) without one.
    if [[ ! -x /usr/bin/chromedriver || ! -x /usr/bin/curl ]]; then
        SUDO=""
        if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
        $SUDO apt-get update && $SUDO apt-get install -y chromium chromium-driver curl
    fi
    python3 scripts/fetch_inception.py
fi
