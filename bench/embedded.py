"""Embedded benchmark: decisions per second of SaleEngine on uvloop, no HTTP.

Each case runs a fresh engine on a fresh event loop with a temporary SQLite
file, warms up briefly, then runs for a fixed time (and at most a fixed
number of decisions):

- ``purchase_many``: hot SKU (stock 10^8, a new user per purchase), clients
  that each await one :meth:`SaleEngine.purchase_many` batch at a time;
  durability ``commit`` and ``async``.
- ``tasks``: the same purchases, one ``purchase()`` coroutine per purchase,
  ``asyncio.gather``-ed per batch: the per-task cost asyncio adds.
- ``sold_out``: sequential ``await engine.purchase(...)`` on a SKU with
  stock 0 (answered on the loop from the published view).
- ``floor``: pure asyncio, no engine: gather of coroutines that each await a
  future resolved by ``loop.call_soon``, same batch shape as ``tasks``.
- ``many_shaped`` / ``tasks_shaped``: ``purchase_many`` and ``tasks`` with
  the limiter and dedup on: token buckets in all four scopes (global, per
  SKU, per user, per IP over a pool of client addresses) at rates that never
  refuse, and a per-user limit on the hot SKU. The table prints what they
  add per decision against the same cases without them.

Run alone: ``python bench/embedded.py [--seconds 3] [--batch 1000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

from flashsale import Config, LimitsConfig, PurchaseRequest, SaleEngine, SkuConfig, StoreConfig
from flashsale.actors import BucketSpec

HOT, GONE = "hot", "gone"
MAX_DECISIONS = 20_000_000  # per case: bounds the run even if the clock misbehaves
WARMUP_S = 0.5
USER_POOL = 4096  # sold-out case: users cycled from a pool (the path reads no per-user state)
IP_POOL = [f"10.{i // 256}.{i % 256}.1" for i in range(1024)]  # shaped cases: client addresses, cycled

HOT_TARGET = 200_000
SOLD_OUT_TARGET = 500_000


@dataclass
class CaseResult:
    """One embedded case: how many decisions in how long, and their outcomes."""

    case: str
    durability: str
    decisions: int
    seconds: float
    outcomes: dict[str, int] = field(default_factory=dict)
    orders_in_db: int | None = None
    reserved_total: int | None = None  # warm-up included, to compare with orders_in_db
    commits: int | None = None  # SQLite transactions the order writer ran (warm-up included)
    others: float | None = None  # CPU cores used by other processes meanwhile (noise)

    @property
    def rate(self) -> float:
        return self.decisions / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {**self.__dict__, "rate": self.rate}


# -- the engine -----------------------------------------------------------------


SHAPED_LIMITS = {
    "global_bucket": BucketSpec(rate=1e9, burst=10**8),
    "per_sku": BucketSpec(rate=1e9, burst=10**8),
    "per_user": BucketSpec(rate=100.0, burst=10),
    "per_ip": BucketSpec(rate=1e9, burst=10**8),
}
"""Every scope on, token buckets, at rates a benchmark never reaches: the cost of deciding, not of refusing."""


def make_config(db: Path, durability: str, max_inflight: int, *, shaped: bool = False) -> Config:
    """A hot SKU with ample stock, a sold-out SKU, orders in ``db``; ``shaped``: limiter and dedup on."""
    return Config(
        skus=(SkuConfig(HOT, stock=10**8, per_user_limit=5 if shaped else None), SkuConfig(GONE, stock=0)),
        store=StoreConfig(path=str(db), durability=durability),  # type: ignore[arg-type]
        limits=LimitsConfig(max_inflight=max_inflight, **(SHAPED_LIMITS if shaped else {})),  # type: ignore[arg-type]
    )


def count_orders(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0])


# -- drivers: each runs clients until the deadline, returns (decisions, outcomes) --

Client = Callable[[int], Awaitable[list[str]]]  # n-th batch -> outcome results


async def _drive(client: Client, concurrency: int, seconds: float, max_batches: int) -> tuple[int, Counter[str], float]:
    """Run ``concurrency`` client loops for ``seconds``; count decisions and outcomes."""
    outcomes: Counter[str] = Counter()
    start = time.perf_counter()
    deadline = start + seconds
    per_client = max(1, max_batches // concurrency)

    async def loop(c: int) -> int:
        done = 0
        for k in range(per_client):
            if time.perf_counter() >= deadline:
                break
            results = await client(c * per_client + k)
            outcomes.update(results)
            done += len(results)
        return done

    counts = await asyncio.gather(*(loop(c) for c in range(concurrency)))
    return sum(counts), outcomes, time.perf_counter() - start


def many_client(engine: SaleEngine, prefix: str, batch: int) -> Client:
    async def client(n: int) -> list[str]:
        base = n * batch
        reqs = [
            PurchaseRequest(HOT, f"{prefix}{base + i}", client_ip=IP_POOL[(base + i) % len(IP_POOL)])
            for i in range(batch)
        ]
        return [o.result for o in await engine.purchase_many(reqs)]

    return client


def tasks_client(engine: SaleEngine, prefix: str, batch: int) -> Client:
    async def client(n: int) -> list[str]:
        base = n * batch
        outs = await asyncio.gather(
            *[
                engine.purchase(HOT, f"{prefix}{base + i}", client_ip=IP_POOL[(base + i) % len(IP_POOL)])
                for i in range(batch)
            ]
        )
        return [o.result for o in outs]

    return client


async def _resolved_by_call_soon(loop: asyncio.AbstractEventLoop) -> str:
    fut: asyncio.Future[str] = loop.create_future()
    loop.call_soon(fut.set_result, "done")
    return await fut


def floor_client(batch: int) -> Client:
    async def client(n: int) -> list[str]:
        loop = asyncio.get_running_loop()
        return await asyncio.gather(*[_resolved_by_call_soon(loop) for _ in range(batch)])

    return client


async def _sold_out_loop(engine: SaleEngine, seconds: float, chunk: int = 1000) -> tuple[int, Counter[str], float]:
    """Sequential awaited purchases on the sold-out SKU, in chunks between clock reads."""
    users = [f"u{i}" for i in range(USER_POOL)]
    purchase = engine.purchase
    outcomes: Counter[str] = Counter()
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while done < MAX_DECISIONS and time.perf_counter() < deadline:
        for i in range(chunk):
            out = await purchase(GONE, users[(done + i) % USER_POOL])
            outcomes[out.result] += 1
        done += chunk
    return done, outcomes, time.perf_counter() - start


# -- cases ----------------------------------------------------------------------


async def engine_case(case: str, durability: str, seconds: float, batch: int, concurrency: int) -> CaseResult:
    """Run one engine case (``many``, ``tasks``, their ``_shaped`` forms, ``sold_out``) on a fresh engine and file."""
    shaped = case.endswith("_shaped")
    with tempfile.TemporaryDirectory(prefix="flashsale-bench-") as tmp:
        db = Path(tmp) / "orders.db"
        inflight = max(10_000, 2 * batch * concurrency)
        engine = SaleEngine(make_config(db, durability, max_inflight=inflight, shaped=shaped))
        max_batches = MAX_DECISIONS // batch
        async with engine:
            if case == "sold_out":
                await _sold_out_loop(engine, WARMUP_S)
                n, outcomes, elapsed = await _sold_out_loop(engine, seconds)
                warm_reserved = 0
            else:
                make = many_client if case.startswith("many") else tasks_client
                _, warm, _ = await _drive(make(engine, "w", batch), concurrency, WARMUP_S, max_batches)
                n, outcomes, elapsed = await _drive(make(engine, "m", batch), concurrency, seconds, max_batches)
                warm_reserved = warm["reserved"]
        return CaseResult(
            case=case,
            durability=durability,
            decisions=n,
            seconds=elapsed,
            outcomes=dict(outcomes),
            orders_in_db=count_orders(db),
            reserved_total=warm_reserved + outcomes["reserved"],
            commits=engine.gauges.commits,
        )


async def floor_case(seconds: float, batch: int, concurrency: int) -> CaseResult:
    """The pure-asyncio floor: no engine, the same gather-of-batches shape."""
    client = floor_client(batch)
    max_batches = MAX_DECISIONS // batch
    await _drive(client, concurrency, WARMUP_S, max_batches)
    n, outcomes, elapsed = await _drive(client, concurrency, seconds, max_batches)
    return CaseResult(case="floor", durability="-", decisions=n, seconds=elapsed, outcomes=dict(outcomes))


def run_all(seconds: float, batch: int, concurrency: int, repeat: int = 1) -> list[CaseResult]:
    """Every case ``repeat`` times (round-robin), each run on its own fresh uvloop loop."""
    plan: list[Callable[[], Coroutine[None, None, CaseResult]]] = [
        lambda: engine_case("many", "commit", seconds, batch, concurrency),
        lambda: engine_case("many", "async", seconds, batch, concurrency),
        lambda: engine_case("tasks", "commit", seconds, batch, concurrency),
        lambda: engine_case("tasks", "async", seconds, batch, concurrency),
        lambda: engine_case("many_shaped", "commit", seconds, batch, concurrency),
        lambda: engine_case("tasks_shaped", "commit", seconds, batch, concurrency),
        lambda: engine_case("sold_out", "commit", seconds, batch, concurrency),
        lambda: floor_case(seconds, batch, concurrency),
    ]
    results: list[CaseResult] = []
    for _ in range(repeat):
        for make in plan:
            start = _noise_probe()
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                result = runner.run(make())
            result.others = _others_cores(start)
            results.append(result)
    return results


def _noise_probe() -> tuple[float, float, int] | None:
    """(wall, this process's CPU seconds, machine busy ticks), or None without /proc."""
    try:
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq = f
    return time.monotonic(), time.process_time(), user + nice + system + irq + softirq


def _others_cores(start: tuple[float, float, int] | None) -> float | None:
    """CPU cores the rest of the machine used since ``start``: how noisy the case's run was."""
    end = _noise_probe()
    if start is None or end is None:
        return None
    wall = end[0] - start[0]
    others_s = (end[2] - start[2]) / os.sysconf("SC_CLK_TCK") - (end[1] - start[1])
    return max(0.0, others_s) / wall if wall > 0 else None


# -- report ---------------------------------------------------------------------

LABELS = {
    "many": "hot SKU, purchase_many batches",
    "tasks": "hot SKU, one purchase() task each",
    "many_shaped": "purchase_many + limiter + dedup",
    "tasks_shaped": "one task each + limiter + dedup",
    "sold_out": "sold out, sequential purchase()",
    "floor": "asyncio floor: gather + call_soon",
}
EXPECTED = {
    "many": "reserved",
    "tasks": "reserved",
    "many_shaped": "reserved",
    "tasks_shaped": "reserved",
    "sold_out": "sold_out",
    "floor": "done",
}
TARGETS = {"many": HOT_TARGET, "sold_out": SOLD_OUT_TARGET}


def verdict(case: str, rate: float) -> str:
    """The target printed next to a case and whether ``rate`` meets it."""
    target = TARGETS.get(case)
    if target is None:
        return "-"
    word = "met" if rate >= target else f"MISSED by {1 - rate / target:.0%}"
    return f">= {target:,}/s: {word} ({rate / target:.2f}x)"


def check(r: CaseResult) -> str | None:
    """What is wrong with one run's outcomes or stored orders, if anything."""
    problems = []
    unexpected = r.decisions - r.outcomes.get(EXPECTED[r.case], 0)
    if unexpected:
        problems.append(f"{unexpected} unexpected outcomes {r.outcomes}")
    if r.orders_in_db is not None and r.reserved_total is not None and r.orders_in_db != r.reserved_total:
        problems.append(f"reserved {r.reserved_total} but {r.orders_in_db} orders in SQLite")
    return "; ".join(problems) or None


def group(results: list[CaseResult]) -> dict[tuple[str, str], list[CaseResult]]:
    groups: dict[tuple[str, str], list[CaseResult]] = {}
    for r in results:
        groups.setdefault((r.case, r.durability), []).append(r)
    return groups


def format_table(results: list[CaseResult], batch: int, concurrency: int) -> str:
    groups = group(results)
    runs = max(len(g) for g in groups.values())
    head = (
        f"Embedded benchmark: SaleEngine on uvloop, batch {batch}, {concurrency} concurrent clients "
        f"(batched cases), median of {runs} run(s)"
    )
    rows = [f"{'case':<34} {'durability':<10} {'median/s':>10} {'min..max /s':>21} {'others':>6}  target"]
    checks = []
    for (case, durability), rs in groups.items():
        rates = [r.rate for r in rs]
        med = statistics.median(rates)
        spread = f"{min(rates):,.0f}..{max(rates):,.0f}"
        others = [r.others for r in rs if r.others is not None]
        noise = f"{max(others):.2f}" if others else "n/a"
        rows.append(f"{LABELS[case]:<34} {durability:<10} {med:>10,.0f} {spread:>21} {noise:>6}  {verdict(case, med)}")
        problems = [p for p in map(check, rs) if p]
        stored = sum(r.orders_in_db or 0 for r in rs)
        commits = sum(r.commits or 0 for r in rs)
        detail = ""
        if case in ("many", "tasks", "many_shaped", "tasks_shaped") and not problems:
            detail = f"; {stored:,} orders stored = reserved, {stored / max(1, commits):,.0f} orders per commit"
        checks.append(f"  {LABELS[case]} ({durability}): " + ("; ".join(problems) if problems else f"ok{detail}"))
    note = "others: CPU cores the rest of the machine used during the case (worst run): noise"
    checks_head = "Checks (every outcome as expected; orders in SQLite = reserved):"
    return "\n".join([head, "", *rows, note, *shaping_cost(groups), "", checks_head, *checks])


def shaping_cost(groups: dict[tuple[str, str], list[CaseResult]]) -> list[str]:
    """Lines giving what the limiter and dedup add per decision (median rates, durability commit)."""
    lines = []
    for case in ("many", "tasks"):
        bare, shaped = groups.get((case, "commit")), groups.get((f"{case}_shaped", "commit"))
        if not bare or not shaped:
            continue
        without = statistics.median(r.rate for r in bare)
        with_ = statistics.median(r.rate for r in shaped)
        if without > 0 and with_ > 0:
            cost = (1 / with_ - 1 / without) * 1e6
            lines.append(
                f"limiter + dedup, {LABELS[case]}: {cost:+.2f} µs per decision "
                f"({1e6 / without:.2f} -> {1e6 / with_:.2f} µs; {with_ / without:.2f}x the rate)"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description="Embedded SaleEngine benchmark.")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per case")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=2, help="concurrent clients in the batched cases")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median is reported")
    args = parser.parse_args()
    results = run_all(args.seconds, args.batch, args.concurrency, args.repeat)
    print(format_table(results, args.batch, args.concurrency))


if __name__ == "__main__":
    main()
