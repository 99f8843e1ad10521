"""A real threaded server on 127.0.0.1: 20 concurrent raters lose and duplicate no vote; a killed server keeps
every vote it acknowledged. Every loop is bounded in count, every wait by a generous hang guard (nothing asserts
a duration: the machine may be loaded); traffic goes to the loopback only."""

import json
import os
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from hyperfit_rate.app import create_app
from hyperfit_rate.store import Store

from .conftest import live_server

REPO = Path(__file__).resolve().parents[2]
RATERS, VOTES_PER_RATER, FLOOD = 20, 8, 300
HANG_GUARD_S = 120  # the longest any single wait may take before the test fails (never a speed check)


def request(url, body=None, token=None, timeout=60.0):
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
    start = threading.Barrier(RATERS, timeout=120)

    def rater(k: int, base: str):
        name = f"load-{k:02d}"
        status, body = request(f"{base}/api/join", {"name": name})
        assert status == 200, body
        token, acknowledged = body["token"], []
        start.wait()  # everyone votes at once
        for step in range(VOTES_PER_RATER):
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
    assert len(sent) == RATERS * VOTES_PER_RATER
    stored = [(v["rater"], v["pair_id"], v["answer"]) for v in Store.open(text_study).votes()]
    assert sorted(stored) == sorted(sent)  # nothing lost, nothing counted twice
    assert len(set((r, p) for r, p, _ in stored)) == len(stored)


@contextmanager
def rate_serve(study, *options, cwd=REPO, open_files=None):
    """`hyperfit rate serve STUDY --port 0 OPTIONS` in a subprocess (optionally with a lower soft open-files
    limit); yields (process, base URL, the lines it wrote so far). Killed at the end."""
    code = "from hyperfit_core.cli import main, root; from hyperfit_rate.cli import rate; " \
           "root.add_command(rate, 'rate'); main()"

    def limit_open_files():
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    proc = subprocess.Popen([sys.executable, "-c", code, "rate", "serve", str(study), "--port", "0", *options],
                            cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=limit_open_files,
                            stderr=subprocess.STDOUT, stdout=subprocess.PIPE, text=True)
    lines = []
    try:
        base, deadline = None, time.monotonic() + HANG_GUARD_S  # a hang guard: the server starts in seconds
        while base is None and time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                lines.append(proc.stdout.readline())
                found = re.search(r"at (http://127\.0\.0\.1:\d+)/", lines[-1])
                base = found.group(1) if found else None
        assert base, f"the server did not start: {''.join(lines)}"
        yield proc, base, lines
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        lines.append(proc.stdout.read())
        proc.stdout.close()


def test_a_killed_server_keeps_every_acknowledged_vote(text_study):
    with rate_serve(text_study) as (proc, base, _):
        token = request(f"{base}/api/join", {"name": "ann"})[1]["token"]
        acknowledged = []
        for answer in ("left", "equal", "right"):
            pair = request(f"{base}/api/next", token=token)[1]["pair"]["id"]
            status, _ = request(f"{base}/api/vote", {"pair": pair, "answer": answer}, token)
            assert status == 200
            acknowledged.append(("ann", pair, answer))
        os.kill(proc.pid, signal.SIGKILL)  # no shutdown, no checkpoint
        proc.wait(10)
    stored = [(v["rater"], v["pair_id"], v["answer"]) for v in Store.open(text_study).votes()]
    assert stored == acknowledged


HALF_SENT = (b"POST /api/vote HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             b"Content-Length: 100\r\n\r\n{\"pair\": ")


@contextmanager
def flooded(base: str, idle: int, half_sent: int):
    """`idle` connections that send nothing and `half_sent` that send half a request (no token needed); closed
    at the end."""
    port = int(base.rsplit(":", 1)[1])
    flood = []
    try:
        for k in range(idle + half_sent):
            connection = socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD_S)
            if k >= idle:
                connection.sendall(HALF_SENT)
            flood.append(connection)
        yield flood
    finally:
        for connection in flood:
            connection.close()


def still_open(connection: socket.socket) -> bool:
    """Whether the server still holds the connection unanswered (nothing sent, not closed), without waiting."""
    connection.setblocking(False)
    try:
        connection.recv(1, socket.MSG_PEEK)  # an answer, end-of-file or a reset: not held any more
        return False
    except BlockingIOError:
        return True
    except ConnectionResetError:
        return False


def test_idle_and_half_sent_connections_do_not_block_a_rater(image_study):
    """300 connections that send nothing and 30 that send half a request, held open (the server's --timeout is longer than the
    test) against a server started, as the docs show, by a relative path and with a soft open-files limit of 256:
    a rater is answered, images included, while all of them are still open. Werkzeug's development server held a
    thread and a file per idle connection, so the rater waited for ever. The time bounds are hang guards only."""
    with rate_serve(image_study.name, "--timeout", "3600", cwd=image_study.parent, open_files=256) as (_, base, _):
        with flooded(base, FLOOD, 30) as flood:
            status, body = request(f"{base}/api/join", {"name": "ann"}, timeout=HANG_GUARD_S)
            assert status == 200, body
            token = body["token"]
            status, state = request(f"{base}/api/next", token=token, timeout=HANG_GUARD_S)
            assert status == 200 and not state["done"]
            for image_id in (state["pair"]["context"], state["pair"]["left"], state["pair"]["right"]):
                with urllib.request.urlopen(f"{base}/img/{image_id}?t={token}", timeout=HANG_GUARD_S) as response:
                    assert response.status == 200 and response.read().startswith(b"\x89PNG")
            status, reply = request(f"{base}/api/vote", {"pair": state["pair"]["id"], "answer": "left"}, token,
                                    HANG_GUARD_S)
            assert status == 200 and reply["ok"]
            assert all(still_open(connection) for connection in flood), "the rater was answered only once " \
                "the server had dropped idle connections"


def test_idle_and_half_sent_connections_are_closed_after_the_timeout(image_study):
    """With --timeout 2 the server closes idle and half-sent connections itself (they would hold a socket each
    for ever otherwise): each one reads end-of-file. Waiting for it is bounded by a hang guard, not timed."""
    with rate_serve(image_study, "--timeout", "2") as (_, base, _):
        with flooded(base, 10, 10) as flood:
            for connection in flood:
                connection.settimeout(HANG_GUARD_S)
                try:
                    assert connection.recv(1024) == b""  # the server closed it
                except ConnectionResetError:
                    pass


def test_no_token_reaches_the_server_output(image_study):
    """Werkzeug's development server logged every request line, tokens included (/r/TOKEN, ?t=TOKEN)."""
    token = Store.open(image_study).add_rater("rater-01", invited=True).token
    with rate_serve(image_study) as (proc, base, lines):
        with urllib.request.urlopen(f"{base}/r/{token}", timeout=HANG_GUARD_S) as page:
            assert page.status == 200
        state = request(f"{base}/api/next", token=token)[1]
        with urllib.request.urlopen(f"{base}/img/{state['pair']['left']}?t={token}", timeout=HANG_GUARD_S) as image:
            assert image.status == 200
        assert request(f"{base}/api/next", token=token[:-3] + "xyz")[0] == 403
        proc.terminate()
    output = "".join(lines)
    assert "serving" in output and token not in output and token[:-3] not in output
