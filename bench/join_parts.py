"""Where a join's cost goes: the join benchmark of bench/room.py against flashsale with parts of the join taken out.

Side by side in one run, alternately, with wrk (``POST /v1/room/join``, a new
buyer per request, the room in its pre-queue, as in ``bench/room.py joins``):

- ``bare``: bench/room.py's bare handler (reads and parses the body, answers).
- ``answer``: flashsale, its join lane answering a fixed new ticket: the lane,
  the buyer's check and the answer, no room work. Nothing is kept.
- ``checked``: the room's checks of the join (:meth:`Door._checked`: the
  window, the buyer's existing ticket, the bounds) and a fresh ticket id, then
  that answer. Nothing is kept.
- ``unplaced``: the whole join on the loop (the ticket kept until it is sent
  on), but the batches never reach the room actor: the actor's share gone.
- ``full``: flashsale as it is.
- ``spinN`` (e.g. ``spin2``, not run unless named): ``answer`` after a busy
  loop of N µs in its place: what any N µs of Python on a join costs the
  server, whatever it does.

Each flashsale variant is this script's ``serve`` mode: it replaces the named
part of :class:`flashsale.room.Room` in its own process, then runs
``flashsale serve``. Nothing here changes flashsale itself.

Run: ``python bench/join_parts.py [--duration 5] [--rounds 3] [--variants answer,checked,unplaced,full,spin2]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from room import JOIN_SCRIPT, ROOM_TOML, bare, wrk
from servers import cpu_seconds, free_port, running

VARIANTS = ("answer", "checked", "unplaced", "full")


def patch(variant: str) -> None:
    """Take ``variant``'s part of a join out of :class:`Room`, in this process."""
    from flashsale.room import Room, TicketStatus  # noqa: PLC0415 - only in the server's process

    if variant == "answer" or variant.startswith("spin"):
        fixed = TicketStatus("AAAAAAAAAAAAAAAA", "pre_queue", None, None, None, 1, None, None, None, 600.0)
        spin = int(variant.removeprefix("spin") or 0) / 1e6 if variant != "answer" else 0.0
        clock = time.perf_counter

        def answer(self: Room, user: str, challenge: str | None = None, nonce: str | None = None) -> object:
            if spin:
                until = clock() + spin
                while clock() < until:
                    pass
            return fixed, True

        Room.join_now = answer  # type: ignore[assignment, method-assign]
    elif variant == "checked":

        def checked(self: Room, user: str, challenge: str | None = None, nonce: str | None = None) -> object:
            at = self._clock()
            self._checked(user, challenge, nonce, at)
            ticket = self._ids()
            return TicketStatus(ticket, "pre_queue", None, None, None, 1, None, None, None, 600.0), True

        Room.join_now = checked  # type: ignore[assignment, method-assign]
    elif variant == "unplaced":

        def dropped(self: Room) -> None:
            if self._flush is not None:
                self._flush.cancel()
                self._flush, self._flush_soon = None, False
            items, self._pending = self._pending, []
            for join in items:  # as if placed: forgotten as the room's tick forgets placed tickets
                self._provisional.pop(join.ticket, None)
                self._provisional_user.pop(join.user, None)

        Room._send_joins = dropped  # type: ignore[method-assign]
    elif variant != "full":
        raise SystemExit(f"unknown variant {variant!r}")


def serve(variant: str, config: str, port: int) -> None:
    patch(variant)
    from flashsale.transport._cli import main  # noqa: PLC0415 - after the patch

    raise SystemExit(main(["serve", "--config", config, "--port", str(port)]))


@contextmanager
def flashsale_variant(tmp: Path, variant: str) -> Iterator[tuple[int, int]]:
    """``variant``'s server with bench/room.py's room (pre-queue until 2099); yields its port and pid."""
    port = free_port()
    config = tmp / f"room-{port}.toml"
    room = ROOM_TOML.format(stock=1_000_000, starts="2099-01-01T00:00:00Z", rate=1.0)
    config.write_text(room + f'\n[store]\npath = "{tmp / f"orders-{port}.db"}"\n', encoding="utf-8")
    cmd = [sys.executable, __file__, "serve", "--variant", variant, "--config", str(config), "--port", str(port)]
    with running(cmd, port, tmp / f"{variant}-{port}.log", 30.0) as proc:
        yield port, proc.pid


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", nargs="?", default="run", choices=("run", "serve"))
    p.add_argument("--variant", default="full")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--config", default="")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=64)
    args = p.parse_args()
    if args.mode == "serve":
        serve(args.variant, args.config, args.port)
        return
    variants = ["bare", *args.variants.split(",")]
    rps: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="flashsale-join-parts-") as t:
        tmp = Path(t)
        for rnd in range(args.rounds):
            for v in variants:
                server = bare(tmp) if v == "bare" else flashsale_variant(tmp, v)
                with server as (port, pid):
                    wrk(JOIN_SCRIPT, port, "/v1/room/join", args.connections, 1, f"warm-{rnd}")
                    cpu = cpu_seconds(pid)
                    r = wrk(JOIN_SCRIPT, port, "/v1/room/join", args.connections, args.duration, f"r{rnd}")
                    cpu_us = (cpu_seconds(pid) - cpu) / max(1, r.responses) * 1e6
                if r.count(200, 202) != r.responses or r.socket_errors:
                    raise SystemExit(
                        f"{v}: {r.responses - r.count(200, 202)} non-2xx answers, {r.socket_errors} errors"
                    )
                rps[v].append(r.rps)
                print(f"  round {rnd + 1} {v:9} {r.rps:9,.0f} req/s  {cpu_us:6.1f} µs CPU/request", flush=True)
    for v in variants[1:]:
        ratios = [x / y for x, y in zip(rps[v], rps["bare"], strict=True)]
        print(
            f"{v:9} median {statistics.median(rps[v]):9,.0f} req/s; ÷ bare per round"
            f" {', '.join(f'{r:.2f}' for r in ratios)}, median {statistics.median(ratios):.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
