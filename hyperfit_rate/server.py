"""The rating server: the app under waitress, a production WSGI server (pure Python), with bounded connections.

Werkzeug's development server gave every connection a thread and never timed one out: a half-sent request held
its thread for good, and ~1,000 idle connections ran the process out of file descriptors, so valid raters timed
out. Waitress reads requests asynchronously (an idle or half-sent connection costs a socket, not a thread), hands
only complete requests to a few worker threads, closes a connection that sent nothing for `timeout` seconds
(a half-sent request included), stops accepting past `max_connections` (more wait in the kernel's listen queue),
and answers oversized headers or bodies itself. It writes no access log, so no rater token reaches a log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass


try:
    import resource
except ImportError:  # not on Windows: its limits are not the file-descriptor kind
    resource = None

DEFAULT_TIMEOUT_S = 30
DEFAULT_MAX_CONNECTIONS = 1000
WORKER_THREADS = 8  # a request is a millisecond of work; SQLite serialises the writes anyway
SPARE_DESCRIPTORS = 64  # listening socket, waitress' trigger, the database and its WAL, the study's files
MAX_REQUEST_BODY = 64 * 1024  # the app refuses more than 16 KiB itself; this stops a huge body at the door
MAX_REQUEST_HEADERS = 32 * 1024


@dataclass(frozen=True)
class ServerLimits:
    timeout_s: int = DEFAULT_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS


def _raise_open_files_limit(wanted: int) -> int:
    """Raise the soft open-files limit toward `wanted` (never past the hard limit); the limit now in force."""
    if resource is None:
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return wanted
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft
    return target


class RatingServer:
    """`app` under waitress on host:port (0: a free port), not yet running: `run()` serves until interrupted.
    `connections` is how many it admits at once: the open-files limit may allow fewer than asked."""

    def __init__(self, app, host: str, port: int, limits: ServerLimits = ServerLimits()):
        from waitress.server import create_server  # here, so `hyperfit --help` does not need waitress

        allowed = _raise_open_files_limit(limits.max_connections + SPARE_DESCRIPTORS) - SPARE_DESCRIPTORS
        self.connections = max(1, min(limits.max_connections, allowed))
        self.channels: dict = {}  # waitress' socket map: the listener, its trigger, one entry per connection
        logging.getLogger("waitress").setLevel(logging.WARNING)  # its INFO lines are about waitress itself
        self.waitress = create_server(
            app, map=self.channels, host=host, port=port, threads=WORKER_THREADS,
            connection_limit=self.connections + 2,  # waitress counts the listener and its trigger too
            channel_timeout=limits.timeout_s, cleanup_interval=max(1, min(30, limits.timeout_s // 4)),
            asyncore_use_poll=True,  # select() stops at 1,024 descriptors
            max_request_body_size=MAX_REQUEST_BODY, max_request_header_size=MAX_REQUEST_HEADERS,
            ident="hyperfit-rate", expose_tracebacks=False)

    @property
    def port(self) -> int:
        if hasattr(self.waitress, "effective_port"):
            return self.waitress.effective_port
        return self.waitress.effective_listen[0][1]  # a host name that resolved to several addresses

    def run(self) -> None:
        self.waitress.run()  # a KeyboardInterrupt ends it (waitress stops its workers then)

    def stop(self) -> None:
        """Stop serving from another thread: close every connection and the listener, then the workers."""
        while self.channels:
            for channel in list(self.channels.values()):
                channel.handle_close()
        self.waitress.task_dispatcher.shutdown()
