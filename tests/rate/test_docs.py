"""docs/rating.md's API example, run as written (curl and python3) against a served study."""

import json
import re
import subprocess
from pathlib import Path

from hyperfit_rate.app import create_app
from hyperfit_rate.store import Store

from .conftest import live_server

DOC = Path(__file__).resolve().parents[2] / "docs" / "rating.md"


def test_the_curl_example_rates_a_pair(text_study):
    api = DOC.read_text().split("## The API", 1)[1]
    script = re.search(r"```bash\n(.*?)```", api, re.S).group(1)
    assert script.startswith("BASE=http://127.0.0.1:8000\n")
    with live_server(create_app(text_study)) as base:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script.replace("http://127.0.0.1:8000", base, 1)],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply == {"duplicate": False, "ok": True, "progress": {"rated": 1, "total": 15}}
    assert [(v["rater"], v["answer"]) for v in Store.open(text_study).votes()] == [("script-01", "equal")]
    shown = script.strip().splitlines()[-1]  # the answer the doc shows
    assert shown.startswith('# {"duplicate":false,"ok":true,"progress":{"rated":1,"total":')
