"""Recording live traffic as a scenario (``flashsale serve --record FILE``).

A :class:`ScenarioRecorder` is handed to :class:`SaleEngine` at
construction; the engine calls it at its gateway, so an embedded sale
records exactly like the HTTP server. It writes the JSON Lines form of a
scenario (docs/scenarios.md): a header with the sale's config and the start
instant, then one line per event in arrival order — each purchase with the
``at`` the gateway stamped on it, every pay, cancel and restock, and every
tick that expired reservations. With a waiting room also every join and
poll (with the ticket id the room gave), every tick the room heard (the
first at or after ``starts_at`` carries the seed: it is written when the draw
is due, never before), and each purchase marked ``"pass": true`` (the door
let it in with a valid Admission-Pass). Replaying the file sends the same
messages to the actors and so reproduces the decisions, the draw and the
admissions included.

The file is bounded: after ``max_events`` events recording stops with one
log line and the sale goes on unrecorded. Lines are buffered and flushed on
:meth:`close`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import IO, Any

import orjson

from flashsale._clock import to_datetime
from flashsale.config import Config

from ._events import FORMAT_VERSION, US

log = logging.getLogger("flashsale.record")


class ScenarioRecorder:
    """Writes the traffic an engine sees as a replayable JSON Lines scenario."""

    MAX_EVENTS = 1_000_000
    """The default bound on recorded events (header not counted)."""

    def __init__(self, path: str | Path, config: Config, start: int, *, max_events: int = MAX_EVENTS) -> None:
        self.path = Path(path)
        self.start = start
        self.max_events = max_events
        self.events = 0
        # A large buffer: the engine writes from the event loop, so the disk is touched once per megabyte.
        self._file: IO[bytes] | None = self.path.open("wb", buffering=1 << 20)
        mapping = config.to_mapping()
        # A replay runs in memory; server addresses (which may carry passwords) stay out of the file.
        for key in ("backend", "redis", "postgres"):
            del mapping[key]
        room = mapping.get("waiting_room")
        if room is not None:
            # Proofs of work were checked live (a replay joins as recorded); the pass key derives from the seed.
            room["pow_bits"] = 0
            room.pop("secret_file", None)
        self._passes = room is not None
        # The live ticks that expired something are recorded as events; a replay must not add its own.
        mapping["engine"]["tick_interval"] = 0
        header = {
            "flashsale_scenario": FORMAT_VERSION,
            "name": self.path.stem,
            "description": f"traffic recorded by flashsale from {to_datetime(start).isoformat()}",
            "start": to_datetime(start).isoformat().replace("+00:00", "Z"),
            "config": mapping,
        }
        self._file.write(orjson.dumps(header) + b"\n")

    def purchase(self, at: int, sku: str, user: str, qty: int, key: str | None, ip: str | None) -> None:  # noqa: PLR0917 - the hot path: no keyword packing
        """One purchase, as the gateway stamped it."""
        event: dict[str, Any] = {"at": self._seconds(at), "user": user, "sku": sku, "qty": qty}
        if key is not None:
            event["key"] = key
        if ip is not None:
            event["ip"] = ip
        if self._passes:
            event["pass"] = True
        self._write(event)

    def operation(self, at: int, op: str, **fields: Any) -> None:
        """A pay, cancel, restock, expiring tick, admin action, or the room's join, poll or tick at ``at``."""
        self._write({"at": self._seconds(at), "op": op, **fields})

    def _seconds(self, at: int) -> float:
        # A float of µs/1e6 reads back to the same µs: round(x * 1e6) inverts it exactly below 2**53 µs.
        return max(0, at - self.start) / US

    def _write(self, event: dict[str, Any]) -> None:
        f = self._file
        if f is None:
            return
        if self.events >= self.max_events:
            log.warning("recording stopped: the file holds its maximum of events", extra={"max": self.max_events})
            self.close()
            return
        self.events += 1
        f.write(orjson.dumps(event) + b"\n")

    def close(self) -> None:
        """Flush and close the file; later events are not recorded."""
        if self._file is not None:
            self._file.close()
            self._file = None
