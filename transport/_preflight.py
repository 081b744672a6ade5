"""What ``flashsale serve`` makes sure of before it opens anything: the port, the database, the backends.

Each check either holds or raises :class:`CannotStart` with one sentence for
a person; ``serve`` logs that sentence as its one ``cannot start`` line and
exits 1. The order is the point: the port is bound first (a second ``make
serve`` stops there), then the order database is locked (a second server on
the same file stops there, before SQLite opens it), and only then is
anything opened or written. With ``backend = "redis"`` both Redis and
PostgreSQL must answer before the worker starts: a worker that cannot reach
either one at start exits, so a supervisor sees it at once, while an outage
*after* start is ridden out (``/readyz`` reports it).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path

from flashsale import Config


class CannotStart(Exception):
    """The server cannot start; the message says why in one line."""


def listen_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to ``host:port``, ready for aiohttp's ``sock=``; nothing else is opened before it."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CannotStart(f"cannot listen on {host}:{port}: {host!r} is not an address here ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart may bind over TIME_WAIT
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            why = "the port is in use (is another flashsale already serving there? pick another with --port)"
        elif exc.errno == errno.EACCES:
            why = "permission denied (ports below 1024 need privileges; pick another with --port)"
        else:
            why = exc.strerror or str(exc)
        raise CannotStart(f"cannot listen on {host}:{port}: {why}") from None
    sock.setblocking(False)
    return sock


def lock_database(path: str) -> int:
    """Hold an exclusive lock on the SQLite file at ``path`` for the life of the process; return its descriptor.

    ``flock`` locks are separate from the POSIX locks SQLite takes, so this
    one does not get in SQLite's way; it only keeps a second server off the
    file. The file is created here if it is new (the store would create it a
    moment later anyway); a path that cannot be written is refused before
    anything else happens.
    """
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(p.parent, os.W_OK):  # SQLite writes its -wal and -shm files next to the database
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        why = f"{p.parent} is not a directory" if exc.errno in (errno.EEXIST, errno.ENOTDIR) else exc.strerror
        raise CannotStart(
            f"cannot write the order database {path}: {why or exc} (set [store] path to a writable place)"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise CannotStart(
            f"the order database {path} is in use by another flashsale server"
            " (stop that one first, or give this one another [store] path)"
        ) from None
    return fd


def check_backends(config: Config) -> None:
    """With ``backend = "redis"``: Redis and PostgreSQL both answer, or :class:`CannotStart` says which does not."""
    if config.backend != "redis":
        return
    from flashsale.redis import probe_postgres, probe_redis  # noqa: PLC0415 - only this backend imports redis/psycopg

    problem = probe_redis(config.redis) or probe_postgres(config.postgres)
    if problem:
        raise CannotStart(problem)
