"""The room actor's own cost per join: CPU µs per placed ticket, no HTTP, no thread hop.

Feeds a :class:`RoomActor` the batches the gateway sends while the room is in
its pre-queue (joins already answered on the loop: no reply), a tick every
100 batches, as ``flashsale serve`` does, with the server's collector
settings (``GC_THRESHOLDS`` and a frozen startup heap). The actor is called
directly on this thread (``on_receive``), so the figure is its work alone:
the tickets it keeps and publishes. It grows with the ticket table (larger
dicts, colder caches): ``--tickets`` sets how many.

Then, on the last round's room, what the actor's thread spends on the tick
that draws and on the next ticks, each a sweep (once a second of message
time: the dead expire and every waiting ticket's position is numbered and
published again). Nobody is heard from in between and nobody is dead, so
each sweep renumbers the whole queue: the cost grows with the tickets.

Run: ``python bench/room_actor.py [--tickets 300000] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import gc
import secrets
import statistics
import time

from flashsale.actors._room import RoomActor
from flashsale.actors._room_messages import Join, JoinBatch, RoomTick
from flashsale.transport._cli import GC_THRESHOLDS

US = 1_000_000
T0 = 1_767_225_600 * US
BATCH = 1_500  # about one tick's joins at 15,000 joins/s


class _NoLoop:
    """The bridge to an event loop the actor would answer through: nobody waits here."""

    def resolve(self, items: object, failed: object = None) -> None:
        return None


def one_round(tickets: int) -> tuple[float, RoomActor, int]:
    """CPU µs per join for ``tickets`` joins into a fresh room's pre-queue; the actor and its ``starts_at``."""
    seed, starts = secrets.token_bytes(32), T0 + 3600 * US
    board = RoomActor.board_for(seed, T0 - US, starts, 200.0)
    actor = RoomActor(
        _NoLoop(),  # type: ignore[arg-type]
        board,
        None,  # type: ignore[arg-type]
        seed=seed,
        secret=secrets.token_bytes(32),
        opens_at=T0 - US,
        starts_at=starts,
        rate=200.0,
        burst=200,
        pass_ttl_us=600 * US,
        dead_us=36_000 * US,  # nobody dies: every sweep renumbers the whole queue
    )
    ids = [secrets.token_urlsafe(12) for _ in range(tickets)]
    batches = [
        JoinBatch(tuple(Join(f"user-{i}", ids[i], T0 + i, None) for i in range(start, min(tickets, start + BATCH))))
        for start in range(0, tickets, BATCH)
    ]
    gc.collect()
    gc.freeze()
    began = time.thread_time()
    for n, batch in enumerate(batches):
        actor.on_receive(batch)
        if n % 67 == 66:  # a tick every 100 ms of joins
            actor.on_receive(RoomTick(T0 + n * BATCH, (), None, None))
    spent = time.thread_time() - began
    gc.unfreeze()
    return spent / tickets * US, actor, starts


def draw_and_sweeps(actor: RoomActor, starts: int) -> list[tuple[str, float]]:
    """CPU ms of the actor's thread for the tick that draws, then two ticks that sweep, then one that does not."""
    out = []
    for name, at in (
        ("draw", starts),
        ("sweep", starts + US),
        ("sweep", starts + 2 * US),
        ("tick", starts + 2 * US + 100_000),
    ):
        began = time.thread_time()
        actor.on_receive(RoomTick(at, (), None, None))
        out.append((name, (time.thread_time() - began) * 1000))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tickets", type=int, default=300_000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    gc.set_threshold(*GC_THRESHOLDS)
    rounds = [one_round(args.tickets) for _ in range(args.rounds)]
    costs = [c for c, _, _ in rounds]
    print(
        f"room actor, {args.tickets:,} joins into the pre-queue: {', '.join(f'{c:.2f}' for c in costs)} µs per join;"
        f" median {statistics.median(costs):.2f}"
    )
    _, actor, starts = rounds[-1]
    ticks = ", ".join(f"{name} {ms:.0f} ms" for name, ms in draw_and_sweeps(actor, starts))
    print(f"then, {args.tickets:,} tickets, CPU of the actor's thread per tick: {ticks}")


if __name__ == "__main__":
    main()
