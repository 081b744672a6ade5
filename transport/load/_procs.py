"""Running a crowd in this process or in ``--procs P`` worker processes, and merging what they measured.

With P workers (``multiprocessing``, spawn), each rebuilds the same event
list from the :class:`~._plan.Crowdspec` and sends its share (every P-th
event) over its own connection pool. Each says ``ready`` once its pool, feed
and room probe are set up; the parent then sets one start time (wall clock)
for all of them, so their schedules line up. Snapshots for the live view
flow back every half second, and at the end each worker's
:meth:`~._sender.Outcome.dump`; the parent merges them exactly (histograms
are added, not averaged).

Ctrl-C reaches every process of the terminal's group: each worker stops its
schedule and sends what it has; the parent waits for them and reports the
run so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import queue
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

from ._live import LiveView, snapshot
from ._plan import Crowdspec, share
from ._sender import Outcome, Sender, Settings, session_for, sigint_stops
from ._stats import Stats

SNAPSHOT_EVERY_S = 0.5
READY_TIMEOUT_S = 120.0
START_DELAY_S = 0.1


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up, absent on Windows
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _run_sender(
    settings: Settings,
    *,
    spec: Crowdspec,
    index: int,
    procs: int,
    budget: int,
    ready: Callable[[], float],
    report: Callable[[dict[str, Any]], None],
) -> Outcome:
    events = share(spec.events(), index, procs)
    async with session_for(settings) as session:
        sender = Sender(settings, session, budget)
        await sender.prepare()
        sender.start_clock(ready())
        loop = asyncio.get_running_loop()

        async def tick() -> None:
            while True:
                await asyncio.sleep(SNAPSHOT_EVERY_S)
                report(snapshot(sender.stats, sender.http.now()))

        ticker = loop.create_task(tick())
        try:
            with sigint_stops(sender):
                return await sender.run(events)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker


def run_here(settings: Settings, spec: Crowdspec, budget: int, live: LiveView) -> tuple[Outcome, float]:
    """One process: the run and its length in seconds."""
    began = [0.0]

    def ready() -> float:
        began[0] = time.perf_counter()
        return began[0]

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        outcome = runner.run(
            _run_sender(
                settings,
                spec=spec,
                index=0,
                procs=1,
                budget=budget,
                ready=ready,
                report=lambda s: live.update(0, s),
            )
        )
    return outcome, time.perf_counter() - began[0]


def _worker(args: tuple[Settings, Crowdspec, int, int, int, Any, Any, Any]) -> None:
    settings, spec, index, procs, budget, out, start, t0_wall = args
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # until the loop's own handler is in place

    def ready() -> float:
        out.put(("ready", index, None))
        if not start.wait(READY_TIMEOUT_S):
            raise TimeoutError("the parent never said start")
        return time.perf_counter() + (float(t0_wall.value) - time.time())

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            outcome = runner.run(
                _run_sender(
                    settings,
                    spec=spec,
                    index=index,
                    procs=procs,
                    budget=budget,
                    ready=ready,
                    report=lambda s: out.put(("snap", index, s)),
                )
            )
        out.put(("done", index, outcome.dump()))
    except BaseException as exc:
        out.put(("error", index, f"{type(exc).__name__}: {exc}"))
        raise


class WorkerFailed(RuntimeError):
    """A worker process failed or died before sending its figures."""


@contextlib.contextmanager
def _parent_ignores_sigint() -> Iterator[list[bool]]:
    """The workers handle Ctrl-C; the parent only notes it and waits for them."""
    hit = [False]

    def note(signum: int, frame: object) -> None:
        hit[0] = True

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield hit
    finally:
        signal.signal(signal.SIGINT, previous)


def run_workers(settings: Settings, spec: Crowdspec, procs: int, budget: int, live: LiveView) -> tuple[Outcome, float]:
    """``procs`` worker processes; their merged outcome and the run's length in seconds."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start = ctx.Event()
    t0_wall = ctx.Value("d", 0.0)
    shares = [budget // procs + (1 if i < budget % procs else 0) for i in range(procs)]
    workers = [
        ctx.Process(target=_worker, args=((settings, spec, i, procs, shares[i], out, start, t0_wall),), daemon=True)
        for i in range(procs)
    ]
    merged = Outcome(Stats(settings.step))
    done: set[int] = set()
    with _parent_ignores_sigint():
        for w in workers:
            w.start()
        try:
            ready: set[int] = set()
            deadline = time.monotonic() + READY_TIMEOUT_S
            while len(ready) < procs:
                kind, index, payload = _get(out, workers, deadline)
                if kind == "error":
                    raise WorkerFailed(f"worker {index}: {payload}")
                if kind == "ready":
                    ready.add(index)
            t0_wall.value = time.time() + START_DELAY_S
            began = time.perf_counter() + START_DELAY_S
            start.set()
            deadline = time.monotonic() + settings.max_time + READY_TIMEOUT_S
            while len(done) < procs:
                kind, index, payload = _get(out, workers, deadline, done)
                if kind == "snap":
                    live.update(index, payload)
                elif kind == "done":
                    merged.merge_dump(payload)
                    done.add(index)
                elif kind == "error":
                    raise WorkerFailed(f"worker {index}: {payload}")
            seconds = time.perf_counter() - began
        finally:
            for w in workers:
                w.join(timeout=5.0)
                if w.is_alive():
                    w.kill()
                    w.join()
    return merged, seconds


def _get(out: Any, workers: list[Any], deadline: float, done: set[int] | None = None) -> tuple[str, int, Any]:
    """The next message; fails if a worker died without a word, or the deadline passed."""
    while True:
        try:
            msg: tuple[str, int, Any] = out.get(timeout=0.25)
        except queue.Empty:
            dead = [i for i, w in enumerate(workers) if not w.is_alive() and (done is None or i not in done)]
            if dead:
                with contextlib.suppress(queue.Empty):
                    last: tuple[str, int, Any] = out.get(timeout=0.5)  # its last words may still be in the pipe
                    return last
                raise WorkerFailed(f"worker {dead[0]} exited with code {workers[dead[0]].exitcode}") from None
            if time.monotonic() > deadline:
                raise WorkerFailed("the workers did not finish in time") from None
            continue
        return msg
