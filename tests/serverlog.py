"""Reading a ``flashsale serve`` process's JSON log lines, for the tests that start real servers."""

from __future__ import annotations

import asyncio
import json
from typing import Any


async def read_lines(stream: asyncio.StreamReader, into: list[Any], until: str | None) -> None:
    """Collect JSON log lines; return after the ``until`` event, or at end of stream."""
    while raw := await stream.readline():
        try:
            line = json.loads(raw)
        except ValueError:
            line = raw.decode(errors="replace")
        into.append(line)
        if until is not None and isinstance(line, dict) and line.get("event") == until:
            return
    if until is not None:
        raise AssertionError(f"the server exited before logging {until!r}: {into[-5:]}")
