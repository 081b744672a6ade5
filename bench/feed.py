"""The live stock feed under 10,000 listeners: ``bench/run.py feed [options]`` or ``python bench/feed.py``.

Starts ``flashsale serve`` (hot SKU, stock 10^8, durability commit, the feed
bounded at 20,000 listeners) and the bare aiohttp handler (bench/bare.py) as
subprocesses, then opens ``--listeners`` feeds of the hot SKU
(``GET /v1/skus/hot/events``) from this process: raw non-blocking sockets in
one epoll selector, each waiting for its snapshot before the next batch
connects.

1. Delivery: ``--changes`` times, one purchase changes the stock; from just
   before that purchase is sent, the time until each listener has received
   the change's event. Prints p50, p99 and max over every listener and
   change, and how many arrived within 1 s (the target: all of them).
2. Throughput: with every listener still attached (a thread reads whatever
   arrived for each of them every 0.2 s, as a browser would), wrk (or
   bench/load.py) drives purchases at flashsale and at the bare handler,
   alternately, ``--rounds`` times, same connections and duration. Prints
   each run and the ratio of the medians (the target: >= 0.7).

Both processes share this machine with the load tool and the listeners:
figures are noisy on a busy 2-core machine; the ratio is measured side by
side in one run for that reason.
"""

from __future__ import annotations

import argparse
import resource
import selectors
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import load
from servers import BENCH, SKU, flashsale_bin, free_port, running

REQUEST = f"GET /v1/skus/{SKU}/events HTTP/1.1\r\nHost: bench\r\n\r\n".encode()


def write_config(tmp: Path, port: int, listeners: int, max_rate: float) -> Path:
    cfg = tmp / "feed.toml"
    cfg.write_text(
        f'[[sku]]\nid = "{SKU}"\nstock = 100000000\n\n'
        f'[store]\npath = "{tmp / "feed.db"}"\ndurability = "commit"\n\n'
        f'[server]\nhost = "127.0.0.1"\nport = {port}\nlog_level = "warning"\n\n'
        f"[feed]\nmax_listeners = {max(20_000, listeners + 100)}\nmax_rate = {max_rate}\n\n"
        # Every listener and the load come from 127.0.0.1: the per-address connection cap must allow them.
        f"[connections]\nmax_per_ip = {listeners + 1000}\nmax_total = {listeners + 1000}\n",
        encoding="utf-8",
    )
    return cfg


class Listeners:
    """Many feed connections in one selector; each knows whether it has seen a change since ``mark``."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.socks: list[socket.socket] = []
        self.lock = threading.Lock()

    def open(self, port: int, n: int, batch: int = 200) -> None:
        for start in range(0, n, batch):
            fresh = []
            for _ in range(min(batch, n - start)):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.sendall(REQUEST)
                s.setblocking(False)
                fresh.append(s)
            for s in fresh:  # wait for each snapshot before the next batch connects
                self._read_until_event(s, time.monotonic() + 30)
                self.sel.register(s, selectors.EVENT_READ)
            self.socks.extend(fresh)

    @staticmethod
    def _read_until_event(s: socket.socket, deadline: float) -> None:
        seen = b""
        while b"event: sku" not in seen:
            if time.monotonic() > deadline:
                raise RuntimeError("a listener got no snapshot within 30 s")
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                time.sleep(0.001)
                continue
            if not chunk:
                raise RuntimeError("the server closed a feed before its snapshot (listener bound?)")
            seen += chunk

    def drain(self) -> None:
        """Read whatever arrived on every listener (discarded)."""
        with self.lock:
            self.drain_locked()

    def delivery(self, trigger: Callable[[], None], timeout: float = 10.0) -> list[float]:
        """Seconds from just before ``trigger()`` until each listener received an event."""
        with self.lock:
            self.drain_locked()
            waiting = set(self.socks)
            delays: list[float] = []
            t0 = time.perf_counter()
            trigger()
            deadline = time.monotonic() + timeout
            while waiting and time.monotonic() < deadline:
                for key, _ in self.sel.select(timeout=0.5):
                    s = key.fileobj
                    data = b""
                    try:
                        while chunk := s.recv(1 << 16):  # type: ignore[union-attr]
                            data += chunk
                    except BlockingIOError:
                        pass
                    if s in waiting and b"event: sku" in data:
                        delays.append(time.perf_counter() - t0)
                        waiting.discard(s)  # type: ignore[arg-type]
            delays.extend([float("inf")] * len(waiting))
            return delays

    def drain_locked(self) -> None:
        for key, _ in self.sel.select(timeout=0):
            try:
                while key.fileobj.recv(1 << 16):  # type: ignore[union-attr]
                    pass
            except BlockingIOError:
                pass

    def close(self) -> None:
        for s in self.socks:
            s.close()
        self.sel.close()


def buy(port: int, user: str) -> None:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/purchase",
        data=f'{{"sku": "{SKU}", "user": "{user}"}}'.encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/feed.py", description=__doc__.splitlines()[0])
    p.add_argument("--listeners", type=int, default=10_000)
    p.add_argument("--changes", type=int, default=5, help="stock changes timed for delivery (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="bare/flashsale throughput pairs (default 3)")
    p.add_argument("--duration", type=int, default=10, help="seconds per throughput run (default 10)")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--max-rate", type=float, default=10.0, help="the server's [feed] max_rate (default 10)")
    p.add_argument("--load", choices=["wrk", "builtin"], default="wrk" if load.wrk_available() else "builtin")
    args = p.parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.listeners + 200 > hard:
        print(f"feed: --listeners {args.listeners} needs more open files than the limit {hard}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="flashsale-feed-") as d:
        tmp = Path(d)
        fs_port, bare_port = free_port(), free_port()
        fs_cmd = [flashsale_bin(), "serve", "--config", str(write_config(tmp, fs_port, args.listeners, args.max_rate))]
        bare_cmd = [sys.executable, str(BENCH / "bare.py"), "--port", str(bare_port)]
        with running(fs_cmd, fs_port, tmp / "flashsale.log", 60), running(bare_cmd, bare_port, tmp / "bare.log", 60):
            listeners = Listeners()
            began = time.monotonic()
            listeners.open(fs_port, args.listeners)
            print(f"listeners  {len(listeners.socks):,} feeds open in {time.monotonic() - began:.1f} s")
            delays: list[float] = []
            for i in range(args.changes if args.listeners else 0):
                delays += listeners.delivery(lambda i=i: buy(fs_port, f"delivery-{i}"))
                time.sleep(0.3)  # past the feed's coalescing window: the next change is its own event
            within = sum(1 for x in delays if x <= 1.0)
            with urllib.request.urlopen(f"http://127.0.0.1:{fs_port}/metrics", timeout=10) as resp:
                metrics = resp.read().decode()
            write_s = next(
                (float(x.split()[1]) for x in metrics.splitlines() if x.startswith("flashsale_feed_write_seconds ")),
                0.0,
            )
            if delays:
                print(
                    f"delivery   {len(delays):,} deliveries ({args.changes} changes x {len(listeners.socks):,}"
                    f" listeners): p50 {pct(delays, 0.5) * 1000:.0f} ms, p99 {pct(delays, 0.99) * 1000:.0f} ms,"
                    f" max {max(delays) * 1000:.0f} ms; within 1 s: {within:,}/{len(delays):,};"
                    f" the server's last write to every listener took {write_s * 1000:.0f} ms"
                )
            stop = threading.Event()

            def keep_reading() -> None:
                while not stop.wait(0.2):
                    listeners.drain()

            reader = threading.Thread(target=keep_reading, daemon=True)
            reader.start()
            rps: dict[str, list[float]] = {"bare": [], "flashsale": []}
            for rnd in range(args.rounds):
                for name, port in (("bare", bare_port), ("flashsale", fs_port)):
                    if args.load == "wrk":
                        r = load.run_wrk(port, SKU, f"{name[0]}{rnd}", args.connections, args.duration)
                    else:
                        r = load.run_builtin(port, SKU, f"{name[0]}{rnd}", args.connections, args.duration)
                    ok = r.status.get(200, 0)
                    rps[name].append(r.rps)
                    print(
                        f"round {rnd + 1}    {name:9} {r.rps:9,.0f} req/s  p50 {r.p50_ms:.2f} ms  p99 {r.p99_ms:.2f} ms"
                        f"  200s {ok:,}/{r.responses:,}"
                    )
            stop.set()
            reader.join()
            still = sum(1 for s in listeners.socks if s.fileno() >= 0)
            ratio = statistics.median(rps["flashsale"]) / statistics.median(rps["bare"])
            print(
                f"purchases  with {args.listeners:,} listeners attached: flashsale/bare = {ratio:.2f}"
                f" (medians of {args.rounds}; target >= 0.70) [{args.load}, {args.connections} connections,"
                f" {args.duration} s runs]; listener sockets open at the end: {still:,}"
            )
            listeners.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
