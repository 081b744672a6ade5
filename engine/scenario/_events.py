"""The values a scenario is made of: events, retry and follow-up policies, and error places.

Shared by the file reader (``_format``, ``_event_reader``) and the crowd
generators (``_crowd``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from flashsale._errors import ScenarioError

Op: TypeAlias = Literal[
    "purchase",
    "pay",
    "cancel",
    "restock",
    "expire",
    "pause",
    "resume",
    "end",
    "limits",
    "room_pause",
    "room_resume",
    "room_rate",
    "join",
    "poll",
    "room_tick",
]
ADMIN_OPS = ("pause", "resume", "end", "limits", "room_pause", "room_resume", "room_rate")
"""An operator's actions (the admin API), recorded by ``serve --record`` and replayed at their instant."""
US = 1_000_000
INF = float("inf")
FORMAT_VERSION = 1
"""The scenario format this flashsale reads and writes (``flashsale_scenario``)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries after a retryable answer: the n-th waits ``backoff × factor^(n-1)``
    seconds (at least the answer's ``retry_after``)."""

    max: int
    backoff: float
    factor: float
    on: frozenset[str]

    def delay_us(self, attempt: int, retry_after: float | None) -> int:
        """Microseconds from the answer to retry number ``attempt`` (1-based)."""
        wait = self.backoff * self.factor ** (attempt - 1)
        return max(1, round(max(wait, retry_after or 0.0) * US))


@dataclass(frozen=True, slots=True)
class FollowUp:
    """What a buyer does once reserved: ``pay`` or ``cancel``, ``after_us`` later."""

    op: Literal["pay", "cancel"]
    after_us: int


@dataclass(frozen=True, slots=True)
class TrafficEvent:
    """One step of traffic at ``at`` microseconds after the scenario's start.

    ``purchase`` uses user, sku, qty, key and ip; ``pay`` and ``cancel`` name
    an ``order`` id (and the ``user`` acting on it: only its buyer can; with
    no user, the buyer the replay saw reserve it), or a ``user`` and ``sku``
    (that buyer's oldest open reservation of it); ``restock`` uses sku and qty;
    ``expire`` delivers the time to the order writer; ``pause``, ``resume`` and
    ``end`` use sku; ``limits`` uses ``limits``; ``room_pause`` and ``room_resume``
    use nothing, ``room_rate`` uses ``rate`` (the room's new admission rate). ``join`` and ``poll`` (a sale with a
    waiting room) use user: a join asks for a ticket, a poll reads the buyer's
    ticket (its heartbeat); either may name the ``ticket`` (a recording names the
    id the live room gave, and a replay gives the same). ``room_tick`` delivers the
    time to the waiting room (recorded: every tick the live room heard; a file
    with them gets no other room ticks); the one at or after ``starts_at``
    carries the room's ``seed``. ``source`` is the user class in summaries: a
    generator's name, or ``traffic``. ``room`` = 1 marks a purchase of a
    crowd that joins the waiting room first: it is held until its buyer is
    admitted, then made as long after the admission as it was after the join.
    ``with_pass`` (``"pass": true``) marks a purchase the door let in with the
    buyer's Admission-Pass (recorded): the replay sends it with the pass its
    room gave that buyer, if any.
    """

    at: int
    op: Op
    user: str | None = None
    sku: str | None = None
    qty: int = 1
    key: str | None = None
    ip: str | None = None
    order: str | None = None
    source: str = "traffic"
    retry: RetryPolicy | None = None
    then: FollowUp | None = None
    limits: tuple[str, float, int] | None = None
    """``limits`` only: the scope, its new rate and burst."""
    room: int = 0
    rate: float | None = None
    """``room_rate`` only: the waiting room's new ``admit_rate``."""
    ticket: str | None = None
    """``join`` and ``poll``: the ticket id, when the file names it."""
    seed: str | None = None
    """``room_tick`` only: the room's seed (64 hex digits), on the tick the draw was due."""
    with_pass: bool = False


class Place:
    """Where in a file a value sits (``traffic[3].qty``, or ``line 7: qty``); builds errors that say so."""

    __slots__ = ("file", "line", "path")

    def __init__(self, file: str, path: str = "", line: int | None = None) -> None:
        self.file = file
        self.path = path
        self.line = line

    def at(self, key: str | int) -> Place:
        if isinstance(key, int):
            return Place(self.file, f"{self.path}[{key}]", self.line)
        return Place(self.file, f"{self.path}.{key}" if self.path else key, self.line)

    def fail(self, msg: str) -> ScenarioError:
        parts = [self.file]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.path:
            parts.append(self.path)
        return ScenarioError(": ".join([*parts, msg]))

    def table(self, value: Any, allowed: AbstractSet[str], required: tuple[str, ...] = ()) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(f"must be an object, got {show(value)}")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.fail(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})")
        for key in required:
            if key not in value:
                raise self.fail(f"needs {key!r}")
        return value

    def text(self, value: Any, *, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(f"must be a non-empty string, got {show(value)}")
        return value

    def whole(self, value: Any, minimum: int = 1) -> int:
        if type(value) is not int or value < minimum:
            raise self.fail(f"must be a whole number >= {minimum}, got {show(value)}")
        return value

    def number(self, value: Any, *, positive: bool = False) -> float:
        if type(value) not in (int, float) or not 0 <= value < INF or (positive and value == 0):  # NaN fails too
            raise self.fail(f"must be a number {'> 0' if positive else '>= 0'}, got {show(value)}")
        return float(value)

    def seconds(self, value: Any) -> int:
        """Seconds from the start (a number >= 0) as microseconds."""
        return round(self.number(value) * US)

    def fraction(self, value: Any) -> float:
        if type(value) not in (int, float) or not 0 <= value <= 1:
            raise self.fail(f"must be a number from 0 to 1, got {show(value)}")
        return float(value)


def show(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."
