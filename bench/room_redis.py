"""The waiting room on Redis: what one Lua call of each kind costs, on a spawned ``redis-server`` (no AOF).

Each figure is the median over ``--rounds`` fresh rooms, measured two ways:
the call's wall time from Python (round trip, argument encoding, parsing
the answer) and Redis's own time (``INFO commandstats``, ``evalsha``
microseconds for that one call: what every other worker waits behind, since
a script blocks Redis while it runs).

- ``join 1,000``: one ``JOIN`` call with 1,000 new buyers (pre-queue: one
  ``ZADD`` each with the Python-computed draw key);
- ``draw 50,000``: the first tick at ``starts_at`` with 50,000 in the
  pre-queue (the draw, the burst's admissions from the drawn order, then
  the sweep it triggers);
- ``sweep 50,000``: a tick one second later, 50,000 tickets waiting, 1,000
  heartbeats with it;
- ``tick``: a tick between sweeps with 1,000 heartbeats;
- ``snapshot 50,000``: the whole room read at once, as a worker does when
  it starts or has fallen behind the log (after the draw, 50,000 waiting);
- ``close 50,000``: the tick that closes the room (sold out) with 50,000
  tickets still waiting: each one reads ``closed``.

Run: ``cd bench && ../.venv/bin/python room_redis.py [--rounds 5] [--tickets 50000]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import redis

from flashsale import RedisConfig
from flashsale.actors import RoomParams
from flashsale.redis import RedisRoomLedger
from flashsale.testing import RedisServer

T0 = 1_767_225_600_000_000
STARTS = T0 + 60_000_000
US = 1_000_000


def _redis_us(client: redis.Redis) -> float:
    stats: dict[str, Any] = client.info("commandstats")
    return float(stats.get("cmdstat_evalsha", {}).get("usec", 0))


def _timed(client: redis.Redis, call: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall ms, Redis ms, answer) of one call."""
    before = _redis_us(client)
    began = time.perf_counter()
    answer = call()
    wall = (time.perf_counter() - began) * 1000
    return wall, (_redis_us(client) - before) / 1000, answer


def one_round(url: str, prefix: str, tickets: int) -> dict[str, tuple[float, float]]:
    client = redis.Redis.from_url(url)
    ledger = RedisRoomLedger(RedisConfig(url=url, prefix=prefix, timeout=30.0))
    ledger.open(bytes(32), RoomParams(None, STARTS, 1000, 1, 600 * US, 3600 * US, 1_000_000))
    out: dict[str, tuple[float, float]] = {}
    seq = 0
    for n in range(0, tickets, 1000):
        batch = [(f"u{i}", f"ticket-{i:012d}", T0 + i, "", 0) for i in range(n, min(n + 1000, tickets))]
        wall, spent, answer = _timed(client, partial(ledger.join, seq, batch))
        seq = answer.seq
        if n == 0:
            out["join 1,000"] = (wall, spent)
    beats = [(f"ticket-{i:012d}", STARTS) for i in range(1000)]
    for name, at in ((f"draw {tickets:,}", STARTS), (f"sweep {tickets:,}", STARTS + US)):
        wall, spent, answer = _timed(client, partial(ledger.tick, seq, at, beats, None))
        seq = answer.seq
        out[name] = (wall, spent)
    wall, spent, _ = _timed(client, partial(ledger.tick, seq, STARTS + US + 100_000, beats, None))
    out["tick, 1,000 beats"] = (wall, spent)
    wall, spent, _ = _timed(client, ledger.snapshot)
    out[f"snapshot {tickets:,}"] = (wall, spent)
    wall, spent, _ = _timed(client, partial(ledger.tick, seq, STARTS + US + 200_000, [], "sold_out"))
    out[f"close {tickets:,}"] = (wall, spent)
    ledger.close()
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.unlink(key)
    client.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tickets", type=int, default=50_000)
    args = parser.parse_args()
    with RedisServer(appendfsync=None) as server:
        rounds = [one_round(server.url, f"bench{r}", args.tickets) for r in range(args.rounds)]
    print(f"room on Redis: {args.tickets:,} tickets, median of {args.rounds} rounds")
    print(f"{'call':<22}{'wall ms':>10}{'redis ms':>10}")
    for name in rounds[0]:
        wall = statistics.median(r[name][0] for r in rounds)
        spent = statistics.median(r[name][1] for r in rounds)
        print(f"{name:<22}{wall:>10.2f}{spent:>10.2f}")


if __name__ == "__main__":
    main()
