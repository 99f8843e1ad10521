"""A real threaded server on 127.0.0.1: 20 concurrent raters lose and duplicate no vote; a killed server keeps
every vote it acknowledged. Every loop is bounded in count and time; traffic goes to the loopback only."""

import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hyperfit_rate.app import create_app
from hyperfit_rate.store import Store

from .conftest import live_server

REPO = Path(__file__).resolve().parents[2]
RATERS, VOTES_PER_RATER, BUDGET_S = 20, 8, 45.0


def request(url, body=None, token=None, timeout=10.0):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Rater-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_twenty_concurrent_raters_lose_and_duplicate_nothing(text_study):
    deadline = time.monotonic() + BUDGET_S
    start = threading.Barrier(RATERS, timeout=30)

    def rater(k: int, base: str):
        name = f"load-{k:02d}"
        status, body = request(f"{base}/api/join", {"name": name})
        assert status == 200, body
        token, acknowledged = body["token"], []
        start.wait()  # everyone votes at once
        for step in range(VOTES_PER_RATER):
            if time.monotonic() > deadline:
                break
            status, state = request(f"{base}/api/next", token=token)
            assert status == 200 and not state["done"], state
            pair = state["pair"]["id"]
            vote = {"pair": pair, "answer": ("left", "right", "equal")[(k + step) % 3]}
            if step == 0:  # a burst of double clicks: three identical votes at the same time
                with ThreadPoolExecutor(3) as burst:
                    replies = list(burst.map(lambda _: request(f"{base}/api/vote", vote, token), range(3)))
                assert all(s == 200 for s, _ in replies), replies
                assert sorted(r["duplicate"] for _, r in replies) == [False, True, True]
            else:
                status, reply = request(f"{base}/api/vote", vote, token)
                assert status == 200 and reply["duplicate"] is False, reply
                if step % 3 == 0:  # a resent request
                    status, reply = request(f"{base}/api/vote", vote, token)
                    assert status == 200 and reply["duplicate"] is True
            acknowledged.append((name, pair, vote["answer"]))
        return acknowledged

    with live_server(create_app(text_study)) as base:
        with ThreadPoolExecutor(RATERS) as pool:
            sent = [vote for votes in pool.map(lambda k: rater(k, base), range(RATERS)) for vote in votes]
    assert time.monotonic() <= deadline, "the load test ran out of its time budget"
    assert len(sent) == RATERS * VOTES_PER_RATER
    stored = [(v["rater"], v["pair_id"], v["answer"]) for v in Store.open(text_study).votes()]
    assert sorted(stored) == sorted(sent)  # nothing lost, nothing counted twice
    assert len(set((r, p) for r, p, _ in stored)) == len(stored)


def test_a_killed_server_keeps_every_acknowledged_vote(text_study):
    code = "from hyperfit_core.cli import main, root; from hyperfit_rate.cli import rate; " \
           "root.add_command(rate, 'rate'); main()"
    proc = subprocess.Popen([sys.executable, "-c", code, "rate", "serve", str(text_study), "--port", "0"],
                            cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        base, deadline = None, time.monotonic() + 30
        while base is None and time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([proc.stderr], [], [], 1.0)
            if ready:
                found = re.search(r"at (http://127\.0\.0\.1:\d+)/", proc.stderr.readline())
                base = found.group(1) if found else None
        assert base, "the server did not start"
        token = request(f"{base}/api/join", {"name": "ann"})[1]["token"]
        acknowledged = []
        for answer in ("left", "equal", "right"):
            pair = request(f"{base}/api/next", token=token)[1]["pair"]["id"]
            status, _ = request(f"{base}/api/vote", {"pair": pair, "answer": answer}, token)
            assert status == 200
            acknowledged.append(("ann", pair, answer))
        os.kill(proc.pid, signal.SIGKILL)  # no shutdown, no checkpoint
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stderr.close()
    stored = [(v["rater"], v["pair_id"], v["answer"]) for v in Store.open(text_study).votes()]
    assert stored == acknowledged
