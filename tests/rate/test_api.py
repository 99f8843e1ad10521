"""The HTTP API in-process (Flask's test client): access, votes, idempotency, images, and every bad input."""

import logging
import sqlite3

import pytest

from hyperfit_rate.app import create_app
from hyperfit_rate.store import Store
from hyperfit_rate.study import Study

from .conftest import SCRIPT


@pytest.fixture
def client(text_study):
    return create_app(text_study).test_client()


def join(client, name="ann"):
    response = client.post("/api/join", json={"name": name})
    assert response.status_code == 200, response.json
    return response.json["token"]


def headers(token):
    return {"X-Rater-Token": token}


def test_join_rate_and_resume(client, text_study):
    token = join(client)
    assert client.get(f"/r/{token}").status_code == 200
    study = Study(text_study)
    order = study.order_for("ann")
    seen = []
    for answer in ("left", "right", "equal"):
        state = client.get("/api/next", headers=headers(token)).json
        assert not state["done"] and state["pair"]["id"] == order[len(seen)]
        seen.append(state["pair"]["id"])
        vote = client.post("/api/vote", json={"pair": seen[-1], "answer": answer}, headers=headers(token))
        assert vote.status_code == 200 and vote.json == {"ok": True, "duplicate": False,
                                                          "progress": {"rated": len(seen), "total": 15}}
    # coming back (same name, a new join): the same rater, the next unrated pair
    assert join(client) == token
    state = client.get("/api/next", headers=headers(token)).json
    assert state["pair"]["id"] == order[3] and state["progress"] == {"rated": 3, "total": 15}
    votes = Store.open(text_study).votes()
    assert [(v["rater"], v["pair_id"], v["answer"]) for v in votes] == list(zip(["ann"] * 3, seen,
                                                                                  ["left", "right", "equal"]))
    for vote in votes:
        left = study.left_version("ann", vote["pair_id"])
        assert vote["left_version"] == left
        assert vote["winner"] == {"left": left, "right": "b" if left == "a" else "a", "equal": "tie"}[vote["answer"]]


def test_a_vote_counts_once(client, text_study):
    token = join(client)
    pair = client.get("/api/next", headers=headers(token)).json["pair"]["id"]
    for _ in range(3):  # a double click, a resend
        response = client.post("/api/vote", json={"pair": pair, "answer": "left"}, headers=headers(token))
        assert response.status_code == 200
    assert response.json["duplicate"] is True and response.json["progress"]["rated"] == 1
    changed = client.post("/api/vote", json={"pair": pair, "answer": "right"}, headers=headers(token))
    assert changed.status_code == 409 and "already" in changed.json["error"]
    # committed: another connection sees exactly one row right away
    with sqlite3.connect(text_study / "votes.sqlite") as con:
        assert con.execute("SELECT COUNT(*), answer FROM votes").fetchone() == (1, "left")
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_rating_until_done(client):
    token = join(client)
    for _ in range(15):
        pair = client.get("/api/next", headers=headers(token)).json["pair"]["id"]
        client.post("/api/vote", json={"pair": pair, "answer": "equal"}, headers=headers(token))
    state = client.get("/api/next", headers=headers(token)).json
    assert state["done"] is True and state["pair"] is None and state["progress"] == {"rated": 15, "total": 15}


@pytest.mark.parametrize("case, status, message", [
    ("no token", 403, "rater token"),
    ("bad token", 403, "rater token"),
    ("unknown pair", 404, "unknown pair"),
    ("tampered pair", 404, "unknown pair"),
    ("pair not a string", 404, "unknown pair"),
    ("bad answer", 400, "answer must be"),
    ("no answer", 400, "answer must be"),
    ("not json", 415, "JSON object"),
    ("json list", 400, "JSON object"),
])
def test_bad_votes_get_a_clear_4xx(client, text_study, case, status, message):
    token = join(client)
    pair = Study(text_study).pair_ids[0]
    body = {"pair": pair, "answer": "left"}
    kwargs = {"json": body, "headers": headers(token)}
    if case == "no token":
        kwargs["headers"] = {}
    elif case == "bad token":
        kwargs["headers"] = headers(token[:-2] + "xx")
    elif case == "unknown pair":
        body["pair"] = "nope"
    elif case == "tampered pair":
        body["pair"] = pair[:-1] + ("A" if pair[-1] != "A" else "B")
    elif case == "pair not a string":
        body["pair"] = ["x"]
    elif case == "bad answer":
        body["answer"] = "both"
    elif case == "no answer":
        del body["answer"]
    elif case == "not json":
        kwargs = {"data": "pair=x&answer=left", "headers": headers(token),
                  "content_type": "application/x-www-form-urlencoded"}
    elif case == "json list":
        kwargs["json"] = [body]
    response = client.post("/api/vote", **kwargs)
    assert response.status_code == status and message in response.json["error"]
    assert Store.open(text_study).votes() == []


def test_reading_the_study_needs_a_token(client):
    assert client.get("/api/next").status_code == 403
    assert client.get("/api/next", headers=headers("forged")).status_code == 403
    assert client.get("/r/forged").status_code == 403
    assert b"rater token" in client.get("/r/forged").data


@pytest.mark.parametrize("name", ["", " ", "x" * 41, "<script>", "a/b", None, 5])
def test_bad_names_are_refused(client, name):
    response = client.post("/api/join", json={"name": name})
    assert response.status_code == 400 and "name" in response.json["error"]


def test_invite_only_server(text_study):
    store = Store.open(text_study)
    invited = store.add_rater("rater-01", invited=True)
    client = create_app(text_study, invite_only=True).test_client()
    assert client.get("/").status_code == 403
    assert client.post("/api/join", json={"name": "mallory"}).status_code == 403
    assert client.get("/api/next").status_code == 403
    page = client.get(f"/r/{invited.token}")
    assert page.status_code == 200 and invited.token.encode() in page.data
    assert client.get("/api/next", headers=headers(invited.token)).json["done"] is False
    # on loopback nobody can take an invited rater's name to get their token
    loopback = create_app(text_study).test_client()
    response = loopback.post("/api/join", json={"name": "rater-01"})
    assert response.status_code == 403 and "invite" in response.json["error"]


def test_page_is_static_escaped_and_locked_down(client):
    page = client.get("/")
    assert page.status_code == 200
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    token = join(client)
    html = client.get(f"/r/{token}").data.decode()
    assert "<script src=\"/static/rate.js\"></script>" in html and "http" not in html.replace("http-equiv", "")
    script = client.get("/static/rate.js").data.decode()
    assert "textContent" in script and "innerHTML" not in script
    # continuations reach the page only as JSON strings; the browser test shows they stay inert
    states = [client.get("/api/next", headers=headers(token)).json]
    assert states[0]["pair"]["context"]
    texts = []
    for _ in range(15):
        state = client.get("/api/next", headers=headers(token)).json
        texts += [state["pair"]["left"], state["pair"]["right"]]
        client.post("/api/vote", json={"pair": state["pair"]["id"], "answer": "left"}, headers=headers(token))
    assert SCRIPT in texts


def test_images_are_served_by_opaque_id_only(image_study):
    client = create_app(image_study).test_client()
    token = join(client)
    pair = client.get("/api/next", headers=headers(token)).json["pair"]
    for image_id in (pair["context"], pair["left"], pair["right"]):
        response = client.get(f"/img/{image_id}?t={token}")
        assert response.status_code == 200 and response.mimetype == "image/png"
        assert response.data.startswith(b"\x89PNG")
        assert client.get(f"/img/{image_id}").status_code == 403  # no token, no image
    for attempt in ("../study.json", "..%2fstudy.json", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2fvotes.sqlite",
                    "images", "study.json", pair["left"] + "x", "..", "%00"):
        response = client.get(f"/img/{attempt}?t={token}")
        assert response.status_code == 404, attempt
    assert client.get("/static/../study.json").status_code == 404
    assert client.get("/study.json").status_code == 404


def test_a_loopback_server_answers_loopback_host_names_only(text_study):
    client = create_app(text_study).test_client()
    for host in ("localhost", "127.0.0.1:8000", "[::1]:8000", "127.0.0.2"):
        assert client.get("/", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example", "evil.example:8000", "192.168.1.5:8000", "[bad"):  # e.g. DNS rebinding to 127.0.0.1
        assert client.get("/", headers={"Host": host}).status_code == 403, host
        assert client.post("/api/join", json={"name": "x"}, headers={"Host": host}).status_code == 403
    invited = create_app(text_study, invite_only=True).test_client()
    token = Store.open(text_study).add_rater("rater-01", invited=True).token
    assert invited.get(f"/r/{token}", headers={"Host": "rating.example.org"}).status_code == 200


def test_templates_autoescape(text_study):
    from flask import render_template

    app = create_app(text_study)
    with app.test_request_context():
        html = render_template("message.html", title="<b>t</b>", message="<script>alert(1)</script>")
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;b&gt;" in html


def test_a_study_served_by_a_relative_path_serves_its_images(image_study, monkeypatch):
    """`hyperfit rate serve study` as docs/rating.md shows it: the path is relative to the working folder."""
    monkeypatch.chdir(image_study.parent)
    client = create_app(image_study.name).test_client()
    token = join(client)
    pair = client.get("/api/next", headers=headers(token)).json["pair"]
    monkeypatch.chdir("/")  # resolved once, at start: a later working folder does not matter
    for image_id in (pair["context"], pair["left"], pair["right"]):
        response = client.get(f"/img/{image_id}?t={token}")
        assert response.status_code == 200 and response.data.startswith(b"\x89PNG"), response.data[:200]


def test_no_image_header_tells_which_ids_show_the_same_file(image_study):
    study = Study(image_study)
    by_file = {}
    for image_id, name in study.image_files.items():
        by_file.setdefault(name, []).append(image_id)
    first, second = next(ids for ids in by_file.values() if len(ids) >= 2)[:2]  # e.g. one original in two pairs
    client = create_app(image_study).test_client()
    token = join(client)
    one, two = (client.get(f"/img/{i}?t={token}") for i in (first, second))
    assert one.status_code == two.status_code == 200 and one.data == two.data
    for header in ("ETag", "Last-Modified", "Content-Disposition", "Expires"):
        assert header not in one.headers and header not in two.headers
    assert one.headers["Cache-Control"] == "no-store"
    shared = {(k, v) for k, v in one.headers.items()} & {(k, v) for k, v in two.headers.items()}
    assert {k for k, _ in shared} <= {"Content-Type", "Content-Length", "Content-Security-Policy", "Cache-Control",
                                      "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options"}
    # a conditional request cannot probe for the file either
    again = client.get(f"/img/{second}?t={token}", headers={"If-None-Match": one.headers.get("ETag", "*")})
    assert again.status_code == 200


NESTED = "[" * 1500
BAD_BODIES = [  # (body bytes, content type, status)
    (NESTED.encode(), "application/json", 400),  # RecursionError in the JSON parser: it was a 500
    (('{"pair": ' + NESTED + ', "answer": "left"}').encode(), "application/json", 400),
    (b'{"pair": "x", "answer": ', "application/json", 400),
    (b"", "application/json", 400),
    (b'{"pair": "\xff", "answer": "left"}', "application/json", 400),  # not UTF-8
    (b'"left"', "application/json", 400),
    (b'{"pair": {"id": 1}, "answer": "left"}', "application/json", 404),
    (b'{"pair": 7, "answer": ["left"], "name": {"x": 1}}', "application/json", 404),
    (b'{"pair": null, "answer": null}', "application/json", 404),
    (b'{"answer": "left", "pair": "' + b"x" * 20_000 + b'"}', "application/json", 413),
    (b'{"pair": "x", "answer": "left"}', "text/plain", 415),
    (b'{"pair": "x", "answer": "left"}', "application/x-www-form-urlencoded", 415),
    (b"<vote/>", "application/xml", 415),
]


@pytest.mark.parametrize("body, content_type, status", BAD_BODIES,
                         ids=["nested", "nested in object", "cut short", "empty", "not utf-8", "a string",
                              "pair an object", "wrong types", "nulls", "huge", "text/plain", "form", "xml"])
def test_every_bad_body_is_a_4xx_with_a_json_error(client, text_study, body, content_type, status):
    token = join(client)
    response = client.post("/api/vote", data=body, content_type=content_type, headers=headers(token))
    assert response.status_code == status and response.json["error"], response.data[:300]
    if status != 404:  # /api/join parses its body the same way
        response = client.post("/api/join", data=body.replace(b'"pair"', b'"name"'), content_type=content_type)
        assert response.status_code in (status, 400) and response.json["error"], response.data[:300]
    assert Store.open(text_study).votes() == []


def test_an_internal_error_is_logged_without_the_token(text_study, monkeypatch, caplog):
    token = Store.open(text_study).add_rater("rater-01", invited=True).token

    def broken(self, token):
        raise RuntimeError("something unforeseen")
    monkeypatch.setattr(Store, "rater_by_token", broken)
    with caplog.at_level(logging.ERROR):
        response = create_app(text_study).test_client().get(f"/r/{token}")
    assert response.status_code == 500
    assert "Exception on /r/... [GET]" in caplog.text and "something unforeseen" in caplog.text
    assert token not in caplog.text


class FullDiskConnection(sqlite3.Connection):
    """SQLite's own error for a full disk on every write of a vote (a real full disk is not at hand in a test)."""

    def execute(self, sql, *args):
        if sql.startswith("INSERT INTO votes"):
            raise sqlite3.OperationalError("database or disk is full")
        return super().execute(sql, *args)


@pytest.mark.parametrize("trouble, reason", [("read-only", "read-only"), ("disk full", "the disk is full")])
def test_a_vote_the_database_cannot_take_is_a_503_that_says_why(text_study, monkeypatch, caplog, trouble, reason):
    client = create_app(text_study).test_client()
    token = join(client)
    pair = client.get("/api/next", headers=headers(token)).json["pair"]["id"]
    real_connect = sqlite3.connect

    def connect(*args, **kwargs):
        if trouble == "disk full":
            return real_connect(*args, factory=FullDiskConnection, **kwargs)
        con = real_connect(*args, **kwargs)
        con.execute("PRAGMA query_only=1")  # SQLite answers writes with SQLITE_READONLY, as for a read-only file
        return con
    monkeypatch.setattr(sqlite3, "connect", connect)
    with caplog.at_level(logging.ERROR):
        response = client.post("/api/vote", json={"pair": pair, "answer": "left"}, headers=headers(token))
    assert response.status_code == 503 and reason in response.json["error"], response.json
    assert "nothing was stored" in response.json["error"] and str(text_study) not in response.json["error"]
    assert reason in caplog.text and "votes.sqlite" in caplog.text  # the organiser's log names the file
    assert client.get("/api/next", headers=headers(token)).status_code == 200  # reading still works
    monkeypatch.undo()
    assert Store.open(text_study).votes() == []
