"""Scenario files: a sale and its traffic in one file (docs/scenarios.md).

Two encodings of one format, version 1:

- JSON: one object with ``flashsale_scenario``, ``name``, ``description``,
  ``start``, ``config`` (the TOML configuration's keys), ``traffic``
  (explicit events), ``generators`` (seeded crowds, see ``_crowd``) and
  ``expect``;
- JSON Lines (``.jsonl``): the same object without ``traffic`` on the first
  line, then one traffic event per line. ``flashsale serve --record`` writes
  this form.

Everything is checked on load. An error is a :class:`ScenarioError` naming
the file, the place (``traffic[3].qty``, or ``line 7: qty``) and what is
wrong, so a typo in a file never turns into a silently different sale.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, get_args

from flashsale._clock import from_datetime, no_offset
from flashsale._errors import ConfigError, ScenarioError
from flashsale.actors import Result
from flashsale.config import Config, StoreConfig

from ._crowd import Crowd, read_generators
from ._event_reader import HEX_SEED, ROOM_OPS, read_event
from ._events import ADMIN_OPS, FORMAT_VERSION, Place, TrafficEvent, show

DEFAULT_START = "2026-01-01T00:00:00Z"
RESULTS: tuple[str, ...] = get_args(Result)  # every purchase result, in the order summaries list them


@dataclass(frozen=True, slots=True)
class Expectations:
    """What ``--check`` verifies; an empty field is not checked."""

    sold: dict[str, int] = field(default_factory=dict)
    paid: dict[str, int] = field(default_factory=dict)
    remaining: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    per_user_max: dict[str, int] = field(default_factory=dict)
    users: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ops: dict[str, int] = field(default_factory=dict)
    expired: int | None = None
    digest: str | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    """A sale and its traffic, loaded and checked."""

    name: str
    description: str
    source: str
    start: int
    config: Config
    tick_interval: float
    events: tuple[TrafficEvent, ...]
    generators: tuple[Crowd, ...]
    expect: Expectations
    room_seed: bytes | None = None
    """The waiting room's seed (``room_seed``, 64 hex digits): the draw, ticket ids and passes replay exactly."""

    def traffic(self) -> list[TrafficEvent]:
        """Every scheduled event: explicit ones, then each crowd's, stably sorted by ``at``.

        The order of events at one instant is their order here, and every
        machine builds the same list: crowds draw from ``random.Random(seed)`` only.
        """
        events = list(self.events)
        for crowd in self.generators:
            events.extend(crowd.expand())
        events.sort(key=lambda e: e.at)
        return events


def _instant(where: Place, value: Any) -> int:
    if not isinstance(value, str):
        raise where.fail(f"must be an ISO 8601 time like {DEFAULT_START}, got {show(value)}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise where.fail(f"not an ISO 8601 time: {value!r}") from None
    if parsed.tzinfo is None:
        raise where.fail(no_offset(value))
    return from_datetime(parsed)


HEADER_KEYS = {
    "flashsale_scenario",
    "name",
    "description",
    "start",
    "config",
    "traffic",
    "generators",
    "expect",
    "room_seed",
}


def read_header(data: Any, file: str, *, jsonl: bool) -> tuple[dict[str, Any], Config, int, float]:
    """The top level and its config; returns (top, config, start, tick interval)."""
    top = Place(file, line=1 if jsonl else None)
    allowed = HEADER_KEYS - {"traffic"} if jsonl else HEADER_KEYS
    t = top.table(data, allowed, ("flashsale_scenario", "config"))
    version = t["flashsale_scenario"]
    if version != FORMAT_VERSION or type(version) is not int:
        raise top.at("flashsale_scenario").fail(f"this flashsale reads version {FORMAT_VERSION}, got {show(version)}")
    for key in ("name", "description"):
        if key in t:
            top.at(key).text(t[key])
    start = _instant(top.at("start"), t.get("start", DEFAULT_START))
    prefix = f"{file}: line 1: config" if jsonl else f"{file}: config"
    try:
        config = Config.from_mapping(t["config"], prefix)
    except ConfigError as exc:
        raise ScenarioError(str(exc)) from None
    # Replays run on a store of their own and deliver time themselves, every tick_interval of virtual time.
    cadence = config.tick_interval
    config = replace(config, store=StoreConfig(durability=config.store.durability), tick_interval=0.0)
    return dict(t), config, start, cadence


def read_expect(raw: Any, where: Place, skus: frozenset[str]) -> Expectations:
    t = where.table(raw, {"sold", "paid", "remaining", "outcomes", "per_user_max", "users", "ops", "expired", "digest"})

    def per_sku(key: str) -> dict[str, int]:
        if key not in t:
            return {}
        table = where.at(key).table(t[key], set(skus))
        return {k: where.at(key).at(k).whole(v, 0) for k, v in table.items()}

    outcomes: dict[str, int] = {}
    if "outcomes" in t:
        table = where.at("outcomes").table(t["outcomes"], set(RESULTS))
        outcomes = {k: where.at("outcomes").at(k).whole(v, 0) for k, v in table.items()}
    users: dict[str, tuple[str, ...]] = {}
    if "users" in t:
        utable = t["users"]
        if not isinstance(utable, Mapping):
            raise where.at("users").fail(f"must be an object of user: [results], got {show(utable)}")
        for user, results in utable.items():
            w = where.at("users").at(user)
            if not isinstance(results, list) or not all(r in RESULTS for r in results):
                raise w.fail(f"must be a list of purchase results ({', '.join(RESULTS)})")
            users[user] = tuple(results)
    ops: dict[str, int] = {}
    if "ops" in t:
        otable = t["ops"]
        if not isinstance(otable, Mapping):
            raise where.at("ops").fail(f"must be an object of 'op:result': count, got {show(otable)}")
        for name, count in otable.items():
            op, _, result = name.partition(":")
            if op not in ("pay", "cancel", "restock", *ADMIN_OPS, "join", "room", "purchase") or not result:
                raise (
                    where.at("ops")
                    .at(name)
                    .fail(
                        "must be 'pay:<result>', 'cancel:<result>', 'restock:restocked' or an admin action's"
                        " ('pause:paused', 'resume:resumed', 'end:ended', 'limits:changed'), or with a waiting room"
                        " 'room_pause:paused', 'room_resume:resumed', 'room_rate:changed', 'join:<result>',"
                        " 'room:admitted', 'room:expired', 'purchase:<refusal>'"
                    )
                )
            ops[name] = where.at("ops").at(name).whole(count, 0)
    digest = t.get("digest")
    if digest is not None and (
        not isinstance(digest, str)
        or not digest.startswith("sha256:")
        or len(digest) != 71
        or not all(c in "0123456789abcdef" for c in digest[7:])
    ):
        raise where.at("digest").fail(f"must be 'sha256:' and 64 hex digits, got {show(digest)}")
    return Expectations(
        sold=per_sku("sold"),
        paid=per_sku("paid"),
        remaining=per_sku("remaining"),
        outcomes=outcomes,
        per_user_max=per_sku("per_user_max"),
        users=users,
        ops=ops,
        expired=where.at("expired").whole(t["expired"], 0) if "expired" in t else None,
        digest=digest,
    )


def parse_scenario(text: str, source: str, *, jsonl: bool = False) -> Scenario:
    """A scenario from its text; ``source`` names it in errors."""
    if jsonl:
        lines = text.splitlines()
        if not lines or not lines[0].strip():
            raise ScenarioError(f"{source}: line 1: needs the scenario header")
        header = _json(lines[0], source, 1)
        raw_events = [(i + 1, line) for i, line in enumerate(lines) if i and line.strip()]
    else:
        header = _json(text, source, None)
        raw_events = []
    top, config, start, cadence = read_header(header, source, jsonl=jsonl)
    skus = frozenset(s.id for s in config.skus)
    max_qty = config.limits.max_qty
    events: list[TrafficEvent] = []
    if jsonl:
        events = [read_event(_json(line, source, n), Place(source, line=n), skus, max_qty) for n, line in raw_events]
    else:
        raw = top.get("traffic", [])
        if not isinstance(raw, list):
            raise Place(source, "traffic").fail(f"must be a list of events, got {show(raw)}")
        events = [read_event(e, Place(source, f"traffic[{i}]"), skus, max_qty) for i, e in enumerate(raw)]
    where = Place(source, line=1 if jsonl else None)
    generators = read_generators(top.get("generators", []), where.at("generators"), skus, max_qty)
    if config.waiting_room is None:
        if any(e.op in ROOM_OPS or e.with_pass for e in events):
            raise where.fail("'join', 'poll' and 'room_tick' events and 'pass' need a waiting_room in the config")
        if any(c.room for c in generators):
            raise where.fail('a generator with "room": true needs a waiting_room in the config')
    return Scenario(
        name=top.get("name", Path(source).stem),
        description=top.get("description", ""),
        source=source,
        start=start,
        config=config,
        tick_interval=cadence,
        events=tuple(events),
        generators=generators,
        expect=read_expect(top.get("expect", {}), where.at("expect"), skus),
        room_seed=read_room_seed(top, where, config, events),
    )


def read_room_seed(top: Mapping[str, Any], where: Place, config: Config, events: list[TrafficEvent]) -> bytes | None:
    """``room_seed``: 64 hex digits; only with ``waiting_room`` in the config.

    A recording carries it on the ``room_tick`` at which the draw was due
    instead; without either it derives from the scenario's name.
    """
    raw = top.get("room_seed")
    if config.waiting_room is None:
        if raw is not None:
            raise where.at("room_seed").fail("is only for a config with a waiting_room")
        return None
    ticked = next((e.seed for e in events if e.seed is not None), None)
    if raw is None:
        if ticked is not None:
            return bytes.fromhex(ticked)
        return hashlib.sha256(b"flashsale-scenario-room/1" + str(top.get("name", "")).encode()).digest()
    if not isinstance(raw, str) or not HEX_SEED.fullmatch(raw):
        raise where.at("room_seed").fail(f"must be 64 lowercase hex digits (32 bytes), got {show(raw)}")
    if ticked is not None and ticked != raw:
        raise where.at("room_seed").fail("differs from the seed a room_tick event carries")
    return bytes.fromhex(raw)


def _json(text: str, source: str, line: int | None) -> Any:
    """Parsed JSON; ``line`` is the JSON Lines line number, if that is where ``text`` came from."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {line} column {exc.colno}" if line is not None else f"line {exc.lineno} column {exc.colno}"
        raise ScenarioError(f"{source}: {where}: not valid JSON: {exc.msg}") from None


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file (``.jsonl``: the JSON Lines form)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{p}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise ScenarioError(f"{p}: not UTF-8 text") from None
    return parse_scenario(text, str(p), jsonl=p.suffix == ".jsonl")
