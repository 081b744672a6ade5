"""Waiting on an external process: a poll with a deadline, never a bare sleep."""

from __future__ import annotations

import time
from collections.abc import Callable

POLL_S = 0.02


class ServerFailed(RuntimeError):
    """A throwaway server did not come up, or exited; the message says which and why."""


def wait_until(check: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``check()`` until it returns a true value; :class:`ServerFailed` after ``timeout`` seconds.

    ``check`` may raise :class:`ServerFailed` itself (a process that exited
    will never become ready); any other exception counts as "not yet".
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except ServerFailed:
            raise
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise ServerFailed(f"timed out after {timeout} s waiting for {what}")
        time.sleep(POLL_S)  # sleep-ok: the poll interval of a deadline-bounded wait on an external process
