"""Recovery time: how long a restart takes with 1,000,000 orders in the store.

``python bench/recovery.py [--orders 1000000] [--repeat 3] [--cold auto|no] [--json FILE]``
(or ``bench/run.py recovery``).

1. Build a temporary SQLite file through the real code path:
   ``SQLiteOrderStore.open()`` then ``write([], batch)`` with batches of
   ``--batch`` orders (each one transaction, the same multi-row INSERTs the
   order writer uses). The mix: ``--skus`` SKUs with skewed popularity,
   ``--users`` buyers drawn uniformly (a per-user limit of 10 units per SKU
   is respected), qty 1/2/3 at 80/15/5 %, ``--keyed`` of the orders with an
   Idempotency-Key, every order ``reserved`` with created_at spread over the
   last 10 minutes and expires_at an hour later (nothing is due while the
   benchmark runs).
2. Measure, each run in a fresh Python process (a restart is a new process;
   imports are not timed in the first two):

   - ``open``: ``SQLiteOrderStore(path).open()``, the recovery queries;
   - ``engine``: ``SaleEngine(config).start()`` until it returns, which is
     when the engine takes purchases: store recovery plus the actors (the
     dedup actor builds its per-user and idempotency tables in ``start()``).
     The child then checks every SKU's recovered counters against the build;
   - ``serve``: ``flashsale serve --config`` from process start to its
     ``{"event": "listening"}`` log line (interpreter, imports, recovery,
     actors, socket), and the same on an empty store, for the fixed part.

   Warm: the file is read once first, so it is in the page cache. Cold
   (``--cold auto``): before each run the file's pages are dropped from the
   page cache with ``posix_fadvise(POSIX_FADV_DONTNEED)`` on that one file
   (no root, nothing else on the machine is touched); ``fincore`` confirms
   it when installed. On a VM the host may still cache the disk, so "cold"
   means cold for this guest.
3. Print a table (median of ``--repeat`` runs, min..max, and the CPU the
   rest of the machine used meanwhile: noise) and the verdict of
   ``SaleEngine.start()`` against the 5 s target (exit status 1 if missed). The temporary directory is
   deleted at the end, on error and on SIGTERM. Every child has a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import queue
import random
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from flashsale import Config, SaleEngine, SkuConfig, SQLiteOrderStore, StoreConfig
from flashsale.actors import Order
from flashsale.testing import free_port

TARGET_S = 5.0
CHILD_TIMEOUT_S = 300.0
PER_USER_LIMIT = 10
PAYMENT_TIMEOUT_S = 3600.0
SHARES = (0.40, 0.25, 0.15, 0.12, 0.08)  # popularity of the first SKUs; any further ones share what is left
QTY = ((1, 0.80), (2, 0.15), (3, 0.05))
STOCK_HEADROOM = 1.10  # each SKU's stock: units sold in the file + 10 % still on sale


@dataclass
class Built:
    """What the benchmark file holds."""

    orders: int
    users: int
    keyed: int
    sold: dict[str, int]  # units reserved per SKU
    stock: dict[str, int]
    bytes: int
    build_seconds: float
    rows_per_second: float


@dataclass
class Measured:
    """One measure (open, engine or serve) in one cache state: the seconds of each run."""

    what: str
    cache: str
    seconds: list[float] = field(default_factory=list)
    others: list[float] = field(default_factory=list)  # CPU cores the rest of the machine used, per run
    notes: list[str] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


# -- building the file ----------------------------------------------------------


def _sku_ids(n: int) -> list[str]:
    return [f"sku-{i}" for i in range(n)]


def _shares(n: int) -> list[float]:
    head = list(SHARES[:n])
    rest = n - len(head)
    left = max(0.0, 1.0 - sum(head))
    return head + [left / rest] * rest if rest else [s / sum(head) for s in head]


def build(path: Path, *, orders: int, users: int, skus: int, keyed: float, batch: int, seed: int) -> Built:
    """Write ``orders`` orders with :meth:`SQLiteOrderStore.write`, ``batch`` per transaction."""
    rng = random.Random(seed)
    ids = _sku_ids(skus)
    weights = _shares(skus)
    qtys, qty_weights = zip(*QTY, strict=True)
    seq = dict.fromkeys(ids, 0)
    sold = dict.fromkeys(ids, 0)
    held: dict[int, int] = {}  # user * skus + sku index -> units
    now = time.time_ns() // 1000
    span = 600_000_000  # created_at over the last 10 minutes
    hold = int(PAYMENT_TIMEOUT_S * 1_000_000)
    prefix = os.urandom(4).hex()
    store = SQLiteOrderStore(path)
    store.open()
    n_keyed = 0
    seen_users: set[int] = set()
    start = time.perf_counter()
    try:
        made = 0
        while made < orders:
            size = min(batch, orders - made)
            sku_picks = rng.choices(range(skus), weights, k=size)
            qty_picks = rng.choices(qtys, qty_weights, k=size)
            rows: list[Order] = []
            for j in range(size):
                k, qty = sku_picks[j], qty_picks[j]
                while True:  # a buyer at the limit buys no more of this SKU: draw another
                    u = rng.randrange(users)
                    slot = u * skus + k
                    if held.get(slot, 0) + qty <= PER_USER_LIMIT:
                        break
                held[slot] = held.get(slot, 0) + qty
                seen_users.add(u)
                sku = ids[k]
                seq[sku] += 1
                sold[sku] += qty
                i = made + j
                created = now - span + i * span // orders
                key = None
                if rng.random() < keyed:
                    key = f"idem-{prefix}-{i}"
                    n_keyed += 1
                rows.append(
                    Order(
                        f"{sku}-{seq[sku]}",
                        sku,
                        f"user-{u}",
                        qty,
                        "reserved",
                        created,
                        created + hold,
                        key,
                        f"{prefix}-{i}",
                    )
                )
            store.write([], rows)
            made += size
    finally:
        store.close()
    elapsed = time.perf_counter() - start
    return Built(
        orders=orders,
        users=len(seen_users),
        keyed=n_keyed,
        sold=sold,
        stock={s: int(n * STOCK_HEADROOM) + 1 for s, n in sold.items()},
        bytes=_file_bytes(path),
        build_seconds=elapsed,
        rows_per_second=orders / elapsed,
    )


def _file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def _config(db: Path, stock: dict[str, int]) -> Config:
    return Config(
        skus=tuple(
            SkuConfig(s, n, per_user_limit=PER_USER_LIMIT, payment_timeout=PAYMENT_TIMEOUT_S) for s, n in stock.items()
        ),
        store=StoreConfig(path=str(db)),
    )


def _toml(db: Path, stock: dict[str, int], port: int) -> str:
    limits = f"per_user_limit = {PER_USER_LIMIT}\npayment_timeout = {PAYMENT_TIMEOUT_S}\n"
    skus = "".join(f'[[sku]]\nid = "{s}"\nstock = {n}\n{limits}\n' for s, n in stock.items())
    return f'[store]\npath = "{db}"\n\n[server]\nhost = "127.0.0.1"\nport = {port}\n\n{skus}'


# -- children: one measurement each, in a fresh interpreter ----------------------


def child_open(db: Path) -> dict[str, object]:
    store = SQLiteOrderStore(db)
    start = time.perf_counter()
    recovered = store.open()
    seconds = time.perf_counter() - start
    store.close()
    reserved = {s: t.reserved for s, t in recovered.skus.items()}
    return {
        "seconds": seconds,
        "per_user": len(recovered.per_user),
        "keyed": len(recovered.keyed),
        "reserved": reserved,
    }


async def _child_engine(db: Path, stock: dict[str, int], sold: dict[str, int]) -> dict[str, object]:
    engine = SaleEngine(_config(db, stock))
    start = time.perf_counter()
    await engine.start()
    seconds = time.perf_counter() - start
    try:
        ready = engine.readiness()
        wrong = {}
        for s, n in stock.items():
            st = await engine.sku_status(s)
            if (st.reserved, st.remaining) != (sold[s], n - sold[s]):
                wrong[s] = (st.reserved, st.remaining)
    finally:
        await engine.stop()
    return {"seconds": seconds, "ready": all(ready.values()), "wrong": wrong}


def child_engine(db: Path, stock: dict[str, int], sold: dict[str, int]) -> dict[str, object]:
    try:
        import uvloop  # noqa: PLC0415 - what `flashsale serve` runs on, when installed
    except ImportError:
        return asyncio.run(_child_engine(db, stock, sold))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_child_engine(db, stock, sold))


def run_child(what: str, db: Path, built: Built) -> dict[str, object]:
    """Run ``bench/recovery.py --child WHAT`` and return the JSON it prints."""
    cmd = [sys.executable, __file__, "--child", what, "--db", str(db), "--built", json.dumps(asdict(built))]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{what} child exited {out.returncode}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def time_serve(tmp: Path, db: Path, stock: dict[str, int]) -> float:
    """Seconds from starting `flashsale serve` to its "listening" line; the server is stopped after."""
    port = free_port()
    cfg = tmp / f"serve-{port}.toml"
    cfg.write_text(_toml(db, stock, port), encoding="utf-8")
    lines: queue.Queue[bytes] = queue.Queue()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flashsale.transport", "serve", "--config", str(cfg)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stdout = proc.stdout
    assert stdout is not None

    def read() -> None:
        for raw in stdout:
            lines.put(raw)
        lines.put(b"")  # end of output: the process is gone

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    tail: list[bytes] = []
    try:
        deadline = start + CHILD_TIMEOUT_S
        while True:
            try:
                raw = lines.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                raise RuntimeError(f"serve: no 'listening' line in {CHILD_TIMEOUT_S:.0f} s") from None
            if not raw:
                raise RuntimeError(f"serve exited {proc.wait(10)}:\n{b''.join(tail).decode(errors='replace')}")
            tail = [*tail[-20:], raw]
            with contextlib.suppress(ValueError, AttributeError):
                if json.loads(raw).get("event") == "listening":
                    return time.perf_counter() - start
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        reader.join(10)
        stdout.close()


# -- noise ------------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def noise_probe() -> tuple[float, float, int] | None:
    """(wall, CPU seconds of this process and its finished children, machine busy ticks); None without /proc."""
    try:
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq = f
    mine = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = mine.ru_utime + mine.ru_stime + kids.ru_utime + kids.ru_stime
    return time.monotonic(), cpu, user + nice + system + irq + softirq


def others_cores(start: tuple[float, float, int] | None) -> float | None:
    """CPU cores everything but this benchmark used since ``start``: how noisy the run was."""
    end = noise_probe()
    if start is None or end is None or end[0] <= start[0]:
        return None
    busy = (end[2] - start[2]) / TICK
    return max(0.0, busy - (end[1] - start[1])) / (end[0] - start[0])


# -- page cache -------------------------------------------------------------------


def warm(db: Path) -> None:
    """Read the whole file once, so it sits in the page cache."""
    with db.open("rb") as f:
        while f.read(1 << 20):
            pass


def evict(db: Path) -> None:
    """Drop this file's pages from the page cache (no root; only this file)."""
    for p in (db, Path(f"{db}-wal")):
        if p.exists():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)  # dirty pages cannot be dropped: write them first
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def resident_bytes(db: Path) -> int | None:
    """Bytes of ``db`` in the page cache, from ``fincore`` (None when it is not installed)."""
    if shutil.which("fincore") is None:
        return None
    out = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--output", "RES", str(db)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    try:
        return int(out.stdout.split()[0])
    except (IndexError, ValueError):
        return None


def cold_supported() -> bool:
    return hasattr(os, "posix_fadvise") and hasattr(os, "POSIX_FADV_DONTNEED")


# -- the benchmark ----------------------------------------------------------------


def measure(args: argparse.Namespace, tmp: Path, db: Path, empty: Path, built: Built) -> list[Measured]:
    caches = ["warm"] + (["cold"] if args.cold == "auto" and cold_supported() else [])
    results: list[Measured] = []
    for cache in caches:
        rows = {w: Measured(w, cache) for w in ("open", "engine", "serve")}
        for rnd in range(1, args.repeat + 1):
            for what, m in rows.items():
                if cache == "warm":
                    warm(db)
                else:
                    evict(db)
                    res = resident_bytes(db)
                    if res is not None:
                        m.notes.append(f"in page cache before run {rnd}: {res / 2**20:.1f} MiB")
                probe = noise_probe()
                if what == "serve":
                    seconds = time_serve(tmp, db, built.stock)
                else:
                    out = run_child(what, db, built)
                    seconds = float(out["seconds"])  # type: ignore[arg-type]
                    _check_child(what, out, built)
                m.seconds.append(seconds)
                others = others_cores(probe)
                if others is not None:
                    m.others.append(others)
                noise = f"  (others: {others:.2f} cores)" if others is not None else ""
                print(f"  {cache:<4} round {rnd}  {what:<6} {seconds:7.3f} s{noise}", flush=True)
        results.extend(rows.values())
    base = Measured("serve_empty", "warm")
    for _ in range(args.repeat):
        probe = noise_probe()
        base.seconds.append(time_serve(tmp, empty, dict.fromkeys(built.stock, 10)))
        others = others_cores(probe)
        if others is not None:
            base.others.append(others)
    print(f"  warm {'':>7}  serve on an empty store: {base.median:.3f} s (median)", flush=True)
    results.append(base)
    return results


def _check_child(what: str, out: dict[str, object], built: Built) -> None:
    """The recovered state must be what was built: a fast wrong answer is no answer."""
    if what == "open":
        if out["reserved"] != built.sold or out["keyed"] != built.keyed:
            raise RuntimeError(f"open() recovered {out['reserved']} / {out['keyed']} keys, built {built.sold}")
    elif not out["ready"] or out["wrong"]:
        raise RuntimeError(f"engine not ready or wrong counters after start(): {out}")


LABELS = {
    "open": "SQLiteOrderStore(path).open()",
    "engine": "SaleEngine(config).start()",
    "serve": "flashsale serve -> listening",
    "serve_empty": "flashsale serve -> listening, empty store",
}


def format_table(built: Built, results: list[Measured]) -> str:
    runs = max(len(m.seconds) for m in results)
    head = (
        f"Recovery time: {built.orders:,} orders ({len(built.sold)} SKUs, {built.users:,} users, "
        f"{built.keyed:,} with an Idempotency-Key, all reserved), file {built.bytes / 2**20:,.0f} MiB; "
        f"median of {runs} run(s), each in a fresh process"
    )
    rows = [f"{'measure':<42} {'cache':<5} {'median s':>9} {'min..max s':>14} {'others':>6}"]
    for m in results:
        spread = f"{min(m.seconds):.3f}..{max(m.seconds):.3f}"
        noise = f"{max(m.others):.2f}" if m.others else "n/a"
        rows.append(f"{LABELS[m.what]:<42} {m.cache:<5} {m.median:>9.3f} {spread:>14} {noise:>6}")
    notes = [f"  {m.cache} {m.what}: {n}" for m in results for n in m.notes]
    verdicts = [
        f"SaleEngine.start() <= {TARGET_S:g} s ({m.cache}): {m.median:.2f} s -> "
        + ("met" if m.median <= TARGET_S else f"MISSED by {m.median - TARGET_S:.2f} s")
        for m in results
        if m.what == "engine"
    ]
    note = "others: CPU cores the rest of the machine used during the runs (worst run): noise"
    out = [head, "", *rows, note]
    if notes:
        out += ["", "page cache (fincore) before each cold run:", *notes]
    return "\n".join([*out, "", *verdicts])


def machine_info() -> dict[str, object]:
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "loadavg_at_start": os.getloadavg(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="flashsale recovery time with a large order store.")
    p.add_argument("--orders", type=int, default=1_000_000)
    p.add_argument("--users", type=int, default=200_000)
    p.add_argument("--skus", type=int, default=5)
    p.add_argument("--keyed", type=float, default=0.10, help="share of orders with an Idempotency-Key")
    p.add_argument("--batch", type=int, default=50_000, help="orders per write() transaction while building")
    p.add_argument("--repeat", type=int, default=3, help="runs per measure; the median is reported")
    p.add_argument("--cold", choices=("auto", "no"), default="auto", help="auto: also cold, when posix_fadvise exists")
    p.add_argument("--seed", type=int, default=1111)
    p.add_argument("--json", type=Path, help="write every raw number to this file")
    p.add_argument("--child", choices=("open", "engine"), help=argparse.SUPPRESS)
    p.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--built", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if min(args.orders, args.users, args.skus, args.batch, args.repeat) < 1 or not 0 <= args.keyed <= 1:
        p.error("--orders, --users, --skus, --batch and --repeat must be >= 1; --keyed from 0 to 1")
    return args


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally that deletes the files


def run(args: argparse.Namespace) -> int:
    m = machine_info()
    print(
        f"machine: {m['nproc']} CPUs, Python {m['python']}, SQLite {m['sqlite']}, "
        f"load average at start {m['loadavg_at_start']}"
    )
    with tempfile.TemporaryDirectory(prefix="flashsale-recovery-") as tmpdir:
        tmp = Path(tmpdir)
        db, empty = tmp / "orders.db", tmp / "empty.db"
        print(f"building {args.orders:,} orders with SQLiteOrderStore.write(), {args.batch:,} per transaction ...")
        built = build(
            db, orders=args.orders, users=args.users, skus=args.skus, keyed=args.keyed, batch=args.batch, seed=args.seed
        )
        print(
            f"  {built.build_seconds:.1f} s ({built.rows_per_second:,.0f} orders/s), "
            f"{built.bytes / 2**20:,.0f} MiB, {built.users:,} users, {built.keyed:,} keyed",
            flush=True,
        )
        if args.cold == "auto" and not cold_supported():
            print("  cold runs skipped: no posix_fadvise on this platform")
        results = measure(args, tmp, db, empty, built)
    print()
    print(format_table(built, results))
    if args.json is not None:
        report = {"machine": m, "built": asdict(built), "results": [asdict(r) for r in results]}
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"\nraw numbers written to {args.json}")
    return 0 if all(r.median <= TARGET_S for r in results if r.what == "engine") else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        built = Built(**json.loads(args.built))
        out = child_open(args.db) if args.child == "open" else child_engine(args.db, built.stock, built.sold)
        print(json.dumps(out))
        return 0
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
