"""The study's votes: SQLite in WAL mode, one row per vote, committed per vote.

A vote is keyed by (rater, pair) with a UNIQUE constraint, so a double click or a resent request never counts
twice, and each vote is its own committed transaction, so killing the server loses nothing already answered.
Every call opens its own short-lived connection: safe from any server thread.
"""

from __future__ import annotations

import datetime as _dt
import re
import secrets
import sqlite3
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from hyperfit_core.errors import HyperfitError

DB_NAME = "votes.sqlite"
ANSWERS = ("left", "right", "equal")
NAME_PATTERN = re.compile(r"^[\w .@+-]{1,40}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS raters (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token TEXT NOT NULL UNIQUE,
    invited INTEGER NOT NULL CHECK (invited IN (0, 1)),
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY,
    rater_id INTEGER NOT NULL REFERENCES raters(id),
    pair_id TEXT NOT NULL,
    left_version TEXT NOT NULL CHECK (left_version IN ('a', 'b')),
    answer TEXT NOT NULL CHECK (answer IN ('left', 'right', 'equal')),
    winner TEXT NOT NULL CHECK (winner IN ('a', 'b', 'tie')),
    created TEXT NOT NULL,
    UNIQUE (rater_id, pair_id)
);
"""


class StoreError(HyperfitError):
    """The vote database cannot be used; `reason` says why (read-only, disk full, ...) without its path."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"the vote database {path}: {reason}")
        self.reason = reason


# SQLite's primary result codes (Python >= 3.11 names them) and the messages sqlite3_errstr gives for them
_REASONS = (("SQLITE_READONLY", "readonly database", "it is read-only (check the permissions of the file and of "
                                                     "the study folder, which must be writable for the WAL files)"),
            ("SQLITE_FULL", "database or disk is full", "the disk is full"),
            ("SQLITE_IOERR", "disk i/o error", "the disk failed to read or write"),
            ("SQLITE_CANTOPEN", "unable to open database file", "it cannot be opened (is the study folder still "
                                                                 "there, and writable?)"),
            ("SQLITE_BUSY", "database is locked", "another process holds it locked"),
            ("SQLITE_CORRUPT", "malformed", "it is damaged"),
            ("SQLITE_NOTADB", "not a database", "it is not a SQLite database"))


def database_trouble(exc: sqlite3.Error) -> str:
    """Why SQLite failed, in words (from the error's name where Python gives it, else from its message)."""
    name, message = getattr(exc, "sqlite_errorname", "") or "", str(exc).lower()
    for code, text, reason in _REASONS:
        if name.startswith(code) or text in message:
            return reason
    return str(exc)


@dataclass(frozen=True)
class Rater:
    id: int
    name: str
    token: str
    invited: bool


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def winner_of(answer: str, left_version: str) -> str:
    """The pair's version ('a' / 'b') the answer prefers, or 'tie'."""
    if answer == "equal":
        return "tie"
    right_version = "b" if left_version == "a" else "a"
    return left_version if answer == "left" else right_version


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | Path) -> "Store":
        store = cls(path)
        with store._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")  # persistent: every later connection is WAL too
            con.executescript(SCHEMA)
        return store

    @classmethod
    def open(cls, study_dir: str | Path) -> "Store":
        path = Path(study_dir) / DB_NAME
        if not path.is_file():
            raise HyperfitError(f"{study_dir} is not a study (no {DB_NAME}); make one with `hyperfit rate build`")
        return cls(path)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing(sqlite3.connect(self.path, timeout=30)) as con:
                con.execute("PRAGMA synchronous=FULL")
                con.execute("PRAGMA foreign_keys=ON")
                con.row_factory = sqlite3.Row
                with con:  # one transaction: committed on success, rolled back on error
                    yield con
        except sqlite3.IntegrityError:
            raise  # a constraint: the caller's to answer
        except sqlite3.DatabaseError as exc:  # the database itself failed: say which way, not "500"
            raise StoreError(self.path, database_trouble(exc)) from exc

    # raters -----------------------------------------------------------------------------------------------
    def add_rater(self, name: str, invited: bool) -> Rater:
        name = check_name(name)
        token = secrets.token_urlsafe(24)
        try:
            with self._connect() as con:
                cur = con.execute("INSERT INTO raters (name, token, invited, created) VALUES (?, ?, ?, ?)",
                                  (name, token, int(invited), _now()))
        except sqlite3.IntegrityError:
            raise HyperfitError(f"a rater named {name!r} already exists") from None
        return Rater(cur.lastrowid, name, token, invited)

    def join(self, name: str) -> Rater:
        """The self-named rater `name` (loopback only): created on first use, the same one when they come back."""
        name = check_name(name)
        with self._connect() as con:
            con.execute("INSERT INTO raters (name, token, invited, created) VALUES (?, ?, 0, ?) "
                        "ON CONFLICT(name) DO NOTHING", (name, secrets.token_urlsafe(24), _now()))
            row = con.execute("SELECT * FROM raters WHERE name = ?", (name,)).fetchone()
        rater = _rater(row)
        if rater.invited:
            raise PermissionError(f"the name {name!r} belongs to an invited rater; use your invite link")
        return rater

    def rater_by_token(self, token: str | None) -> Rater | None:
        if not token or len(token) > 100:
            return None
        with self._connect() as con:
            row = con.execute("SELECT * FROM raters WHERE token = ?", (token,)).fetchone()
        if row is None or not secrets.compare_digest(row["token"], token):
            return None
        return _rater(row)

    def raters(self) -> list[Rater]:
        with self._connect() as con:
            return [_rater(row) for row in con.execute("SELECT * FROM raters ORDER BY id")]

    # votes ------------------------------------------------------------------------------------------------
    def record_vote(self, rater: Rater, pair_id: str, left_version: str, answer: str) -> tuple[str, bool]:
        """Store one vote; (the stored answer, whether it was already there). A repeat never adds a row."""
        if answer not in ANSWERS:
            raise ValueError(f"answer must be one of {', '.join(ANSWERS)}")
        with self._connect() as con:
            cur = con.execute(
                "INSERT INTO votes (rater_id, pair_id, left_version, answer, winner, created) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(rater_id, pair_id) DO NOTHING",
                (rater.id, pair_id, left_version, answer, winner_of(answer, left_version), _now()))
            if cur.rowcount == 1:
                return answer, False
            row = con.execute("SELECT answer FROM votes WHERE rater_id = ? AND pair_id = ?",
                              (rater.id, pair_id)).fetchone()
        return row["answer"], True

    def voted_pairs(self, rater: Rater) -> set[str]:
        with self._connect() as con:
            return {row[0] for row in con.execute("SELECT pair_id FROM votes WHERE rater_id = ?", (rater.id,))}

    def votes(self) -> list[dict]:
        """Every vote with its rater's name, oldest first."""
        with self._connect() as con:
            rows = con.execute("SELECT v.id, r.name AS rater, v.pair_id, v.left_version, v.answer, v.winner, "
                               "v.created FROM votes v JOIN raters r ON r.id = v.rater_id ORDER BY v.id").fetchall()
        return [dict(row) for row in rows]


def check_name(name) -> str:
    name = name.strip() if isinstance(name, str) else ""
    if not NAME_PATTERN.match(name):
        raise ValueError("a name is 1-40 letters, digits, spaces or . @ + - _")
    return name


def _rater(row) -> Rater:
    return Rater(row["id"], row["name"], row["token"], bool(row["invited"]))
