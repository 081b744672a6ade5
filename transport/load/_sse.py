"""Reading Server-Sent Events from an aiohttp response: ``(event, data)`` pairs.

The stream format (WHATWG "server-sent events"): lines ``field: value``;
``event`` names the event (``message`` when absent), ``data`` lines are
joined with newlines, a blank line dispatches, a line starting with ``:`` is
a comment (keep-alive). ``id`` and ``retry`` are not needed here and are
ignored. A line longer than :data:`MAX_LINE` ends the stream with
:class:`ValueError`: a feed is small JSON, not unbounded text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp

MAX_LINE = 1 << 20


async def events(resp: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, str]]:
    name, data = "", list[str]()
    while True:
        raw = await resp.content.readline()
        if not raw:
            return
        if len(raw) > MAX_LINE:
            raise ValueError(f"an event line of {len(raw)} bytes")
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if data:
                yield name or "message", "\n".join(data)
            name, data = "", list[str]()
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
