"""The rating web app (Flask): one page per rater, a JSON API for the next pair and the vote, images by id.

Access: every API call carries the rater's token (header `X-Rater-Token`; image URLs `?t=`). A token comes
from an invite link (`/r/TOKEN`, `hyperfit rate invite`) or, only when the server listens on a loopback
address, from picking a name on `/`. With `invite_only` (any other interface) `/` and `/api/join` answer 403,
so nobody without a link can vote or read the study. Votes are POSTed as JSON with the token header: a plain
cross-site form can do neither. The page is static HTML/CSS/JS from this package (no CDN, no build step); the
JS puts every text in with `textContent`, and the Content-Security-Policy forbids inline scripts besides.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, Response, abort, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from hyperfit_rate.store import ANSWERS, Store, StoreError
from hyperfit_rate.study import Study

ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
TOKEN_IN_PATH = re.compile(r"^(/r/)[^/]*")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


def is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address((host or "").strip("[]")).is_loopback
    except ValueError:
        return False  # a host name may resolve to anything: not loopback


class _RatingFlask(Flask):
    def log_exception(self, exc_info) -> None:
        # Flask's own line names request.path, and a rater's page is /r/<token>: the log would hold the token
        self.logger.error("Exception on %s [%s]", TOKEN_IN_PATH.sub(r"\1...", request.path), request.method,
                          exc_info=exc_info)


def create_app(study_dir: str | Path, invite_only: bool = False) -> Flask:
    """The app for one study folder. `invite_only`: raters need an invite link (required off loopback)."""
    study_dir = Path(study_dir).resolve()  # once: a relative path would be taken against Flask's package folder
    study = Study(study_dir)
    store = Store.open(study_dir)
    app = _RatingFlask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=16 * 1024)
    app.extensions["hyperfit_rate"] = {"study": study, "store": store, "invite_only": invite_only}

    def rater_or_403(token: str | None):
        rater = store.rater_by_token(token)
        if rater is None:
            abort(403, "a valid rater token is needed (ask the study's organiser for your link)")
        return rater

    def json_object(shape: str) -> dict:
        """The request's JSON object, or a 4xx naming `shape`; never a 500, whatever the body holds."""
        if not request.is_json:
            abort(415, f"send a JSON object {shape} with Content-Type: application/json")
        try:
            body = json.loads(request.get_data(cache=False))  # too long: werkzeug answers 413 here
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deeply for the parser
            body = None
        if not isinstance(body, dict):
            abort(400, f"send a JSON object {shape}")
        return body

    def progress(voted: set[str]) -> dict:
        return {"rated": len(voted & study.pairs.keys()), "total": len(study.pairs)}

    @app.before_request
    def loopback_host_only():
        # Without invites anyone who reaches the server may pick a name, so it must only be reachable as
        # loopback: a page elsewhere that rebinds its own host name to 127.0.0.1 is refused here.
        if invite_only:
            return
        try:
            hostname = urlsplit(f"//{request.host}").hostname
        except ValueError:  # a malformed Host header
            hostname = None
        if not is_loopback(hostname):
            abort(403, "this server admits raters on the loopback address only")

    @app.after_request
    def security_headers(response):
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"  # tokens live in URLs
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if request.path.startswith("/api/") or request.path.startswith("/img/"):
            return jsonify(error=exc.description or exc.name), exc.code
        return render_template("message.html", title=exc.name, message=exc.description), exc.code

    @app.errorhandler(StoreError)
    def store_error(exc: StoreError):
        # the server's trouble, not the rater's: 503, saying what to fix; nothing was stored
        app.logger.error("%s", exc)  # the organiser's line, with the path
        message = f"the server cannot use its vote database ({exc.reason}), so nothing was stored; please tell " \
                  "the study's organiser"
        if request.path.startswith("/api/"):
            return jsonify(error=message), 503
        return render_template("message.html", title="Service Unavailable", message=message), 503

    @app.get("/")
    def join_page():
        if invite_only:
            abort(403, "this study is open by invite link only; ask the study's organiser for yours")
        return render_template("join.html", kind=study.kind)

    @app.post("/api/join")
    def join():
        if invite_only:
            abort(403, "this study is open by invite link only")
        body = json_object('{"name": ...}')
        try:
            rater = store.join(body.get("name"))
        except ValueError as exc:
            abort(400, str(exc))
        except PermissionError as exc:
            abort(403, str(exc))
        return jsonify(token=rater.token, url=f"/r/{rater.token}", name=rater.name)

    @app.get("/r/<token>")
    def rate_page(token: str):
        rater = rater_or_403(token)
        return render_template("rate.html", token=rater.token, name=rater.name, kind=study.kind)

    @app.get("/api/next")
    def next_pair():
        rater = rater_or_403(request.headers.get("X-Rater-Token"))
        voted = store.voted_pairs(rater)
        state = {"rater": rater.name, "progress": progress(voted)}
        for pair_id in study.order_for(rater.name):
            if pair_id not in voted:
                return jsonify(done=False, pair=study.shown(rater.name, pair_id), **state)
        return jsonify(done=True, pair=None, **state)

    @app.post("/api/vote")
    def vote():
        rater = rater_or_403(request.headers.get("X-Rater-Token"))
        body = json_object('{"pair": ID, "answer": "left" | "right" | "equal"}')
        pair_id, answer = body.get("pair"), body.get("answer")
        if not isinstance(pair_id, str) or pair_id not in study.pairs:
            abort(404, "unknown pair")
        if answer not in ANSWERS:
            abort(400, "answer must be \"left\", \"right\" or \"equal\"")
        stored, duplicate = store.record_vote(rater, pair_id, study.left_version(rater.name, pair_id), answer)
        if duplicate and stored != answer:
            abort(409, f"this pair already has your answer ({stored}); a vote is final")
        return jsonify(ok=True, duplicate=duplicate, progress=progress(store.voted_pairs(rater)))

    @app.get("/favicon.ico")
    def favicon():
        return "", 204

    @app.get("/img/<image_id>")
    def image(image_id: str):
        rater_or_403(request.args.get("t"))
        path = study.image_path(image_id) if ID_PATTERN.match(image_id) else None
        try:
            data = path.read_bytes() if path is not None else None
        except OSError:
            data = None
        if data is None:
            abort(404, "unknown image")
        # the bytes only: no ETag or Last-Modified, which send_file derives from the file and so would be the same
        # for every id of one file (the original's side could be told across pairs by its headers)
        return Response(data, mimetype="image/png")

    return app
