"""Screenshot the rating page of a study (docs/rating_page.png) with Debian's headless chromium.

    hyperfit vision demo --out runs && hyperfit rate build demo-study --runs runs/<the demo run dir>
    python3 scripts/rating_screenshot.py demo-study docs/rating_page.png

Serves the study on 127.0.0.1 (a free port) in a thread, as the invited rater --name (added if new).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import threading

from hyperfit_rate.app import create_app
from hyperfit_rate.server import RatingServer
from hyperfit_rate.store import Store

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--hide-scrollbars", "--virtual-time-budget=4000"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study")
    parser.add_argument("out")
    parser.add_argument("--window-size", default="1200,800")
    parser.add_argument("--name", default="rater-01")
    args = parser.parse_args()
    store = Store.open(args.study)
    rater = next((r for r in store.raters() if r.name == args.name), None) or store.add_rater(args.name, True)
    server = RatingServer(create_app(args.study), "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run(["chromium", *FLAGS, f"--user-data-dir={profile}", f"--screenshot={args.out}",
                            f"--window-size={args.window_size}",
                            f"http://127.0.0.1:{server.port}/r/{rater.token}"], check=True, timeout=120)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
