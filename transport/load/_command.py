"""``flashsale load URL [...]``: the command line, read and checked before any request is sent.

Exit status: 0 when every threshold held (the sale's invariants always
among them), 99 when one was breached (each named), 2 for a bad command line
(unknown metric, malformed threshold, unreadable scenario or key, impossible
crowd) before anything is sent, 1 when the run could not be carried out
(``--feed on`` or ``--room on`` without one, a worker process failed), 130
after Ctrl-C (the summary so far is printed first).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import secrets
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

from flashsale import ScenarioError, load_scenario
from flashsale.scenario import PATTERNS, Crowd

from ._audit import Verdict, audit
from ._feed import FeedError
from ._identity import Identity, IdentityError
from ._live import LiveView
from ._plan import Crowdspec, flag_crowd
from ._procs import WorkerFailed, run_here, run_workers
from ._report import write_report
from ._result import RunResult
from ._retry import Backoff
from ._room import RoomError
from ._sender import Outcome, Settings
from ._stats import series_step
from ._summary import print_summary
from ._thresholds import Threshold, ThresholdError, breaches, parse_all

EXIT_BREACH = 99
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
MAX_PROCS = 64
GRACE_S = 30.0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``load`` and its options on the ``flashsale`` command's sub-parsers."""
    p = sub.add_parser(
        "load",
        help="rehearse a sale against your own server: simulated buyers, HDR percentiles, thresholds, a verdict",
        description="Rehearse a sale: an open-loop crowd of buyers against URL, audited at the end.",
    )
    p.add_argument("url", metavar="URL", help="the server (http://host:port); nothing is sent anywhere else")
    crowd = p.add_argument_group("the crowd (a scenario file, or flags)")
    crowd.add_argument("--scenario", metavar="FILE", help="a scenario file: its traffic and generators, in real time")
    crowd.add_argument("--buyers", type=int, metavar="N", help="buyers (default: rate x duration)")
    crowd.add_argument("--arrival", choices=PATTERNS, default="uniform", help="arrival pattern (default uniform)")
    crowd.add_argument("--rate", type=float, metavar="R", help="arrivals per second (uniform, poisson)")
    crowd.add_argument("--duration", type=float, metavar="S", help="seconds over which buyers arrive (default 10)")
    crowd.add_argument("--sku", action="append", default=[], metavar="ID", help="a SKU to buy (repeat for a mix)")
    crowd.add_argument("--qty", type=int, default=1, help="units per purchase (default 1)")
    crowd.add_argument("--seed", type=int, help="the crowd's seed (default: random, printed in --json)")
    crowd.add_argument("--user-prefix", metavar="P", help="buyers are named P1, P2, ... (default: <run id>-)")
    crowd.add_argument("--pay", type=float, default=0.0, metavar="F", help="fraction of reservations paid")
    crowd.add_argument("--cancel", type=float, default=0.0, metavar="F", help="fraction of reservations cancelled")
    crowd.add_argument("--pay-after", type=float, default=1.0, metavar="S", help="seconds before pay/cancel")
    crowd.add_argument("--per-user-limit", type=int, metavar="N", help="the limit the verdict checks (flags only)")
    who = p.add_argument_group("identity")
    who.add_argument("--auth", choices=("trusted", "header", "jwt"), default="trusted", help="the server's [auth] mode")
    who.add_argument("--auth-header", default="X-User-Id", metavar="NAME", help="header mode: the header")
    who.add_argument("--jwt-secret", metavar="S", help="jwt mode: the HS256 shared secret")
    who.add_argument("--jwt-secret-file", metavar="FILE", help="jwt mode: a file holding the shared secret")
    who.add_argument("--jwt-key-file", metavar="PEM", help="jwt mode: a private key (RS256, ES256, EdDSA)")
    who.add_argument("--jwt-alg", metavar="ALG", help="jwt mode: HS256/384/512, RS256, ES256 or EdDSA")
    who.add_argument("--jwt-issuer", metavar="ISS", help="jwt mode: the iss claim")
    who.add_argument("--jwt-audience", metavar="AUD", help="jwt mode: the aud claim")
    flow = p.add_argument_group("flows")
    flow.add_argument("--feed", choices=("auto", "on", "off"), default="auto", help="watch GET /v1/events")
    flow.add_argument("--room", choices=("auto", "on", "off"), default="auto", help="go through the waiting room")
    flow.add_argument("--room-follow", choices=("poll", "sse"), default="poll", help="how a ticket is followed")
    flow.add_argument("--retries", type=int, default=3, help="retries of 429/503 per request (default 3)")
    flow.add_argument("--backoff", type=float, default=0.05, metavar="S", help="first retry wait (default 0.05)")
    flow.add_argument("--backoff-cap", type=float, default=2.0, metavar="S", help="longest retry wait (default 2)")
    bounds = p.add_argument_group("bounds")
    bounds.add_argument("--procs", type=int, default=1, metavar="P", help="worker processes (default 1)")
    bounds.add_argument(
        "--connections", type=int, default=64, metavar="C", help="keep-alive connections per process (default 64)"
    )
    bounds.add_argument("--timeout", type=float, default=10.0, metavar="S", help="per request (default 10)")
    bounds.add_argument("--max-requests", type=int, default=1_000_000, metavar="N", help="in all (default 1e6)")
    bounds.add_argument("--max-time", type=float, metavar="S", help="in all (default: the schedule + 30 s)")
    bounds.add_argument("--audit-orders", type=int, default=100_000, metavar="N", help="orders checked at most")
    out = p.add_argument_group("results")
    out.add_argument("--threshold", action="append", default=[], metavar="EXPR", help="e.g. 'purchase.p99<50ms'")
    out.add_argument("--json", metavar="FILE", help="every figure and the encoded HDR histograms")
    out.add_argument("--report", metavar="FILE", help="a self-contained HTML page")
    out.add_argument("--live", action=argparse.BooleanOptionalAction, default=None, help="live view (default: tty)")


class UsageError(ValueError):
    """A command line that cannot run (exit 2, before any request)."""


@dataclass
class Prepared:
    settings: Settings
    spec: Crowdspec
    thresholds: list[Threshold]
    skus: list[str]
    limits: dict[str, int]
    arrivals: int
    asked_rate: float
    span: float
    crowd_text: str


def prepare(args: argparse.Namespace) -> Prepared:
    """Everything checked, nothing sent."""
    try:
        thresholds = parse_all(args.threshold)
    except ThresholdError as exc:
        raise UsageError(str(exc)) from None
    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise UsageError(f"URL must be like http://host:port (no path), got {args.url!r}")
    if not 1 <= args.procs <= MAX_PROCS:
        raise UsageError(f"--procs must be 1..{MAX_PROCS}")
    for name in ("connections", "max_requests", "audit_orders", "qty"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
    if args.retries < 0 or not 0 < args.backoff <= args.backoff_cap or not args.timeout > 0:
        raise UsageError("--retries >= 0, 0 < --backoff <= --backoff-cap, and --timeout > 0")
    try:
        identity = Identity.from_options(
            args.auth,
            header=args.auth_header,
            algorithm=args.jwt_alg,
            secret=args.jwt_secret,
            secret_file=args.jwt_secret_file,
            key_file=args.jwt_key_file,
            issuer=args.jwt_issuer,
            audience=args.jwt_audience,
        )
    except IdentityError as exc:
        raise UsageError(str(exc)) from None
    run_id = secrets.token_hex(4)
    limits: dict[str, int] = {}
    if args.scenario:
        flags = [f for f in ("buyers", "rate", "duration", "seed", "user_prefix", "per_user_limit") if getattr(args, f)]
        if args.sku or flags:
            raise UsageError("--scenario gives the crowd: drop --sku/--buyers/--rate/--duration/--seed/--user-prefix")
        try:
            scenario = load_scenario(args.scenario)
        except ScenarioError as exc:
            raise UsageError(str(exc)) from None
        spec = Crowdspec(scenario=args.scenario)
        events = scenario.traffic()
        skus = [s.id for s in scenario.config.skus]
        limits = {s.id: s.per_user_limit for s in scenario.config.skus if s.per_user_limit is not None}
        span = events[-1].at / 1e6 if events else 0.0
        asked = 0.0
        crowd_text = f"scenario {scenario.name} ({len(events):,} events over {span:.2f} s)"
    else:
        crowd, asked = _flag_crowd(args, run_id)
        spec = Crowdspec(crowd=crowd)
        events = spec.events()
        skus = list(dict.fromkeys(args.sku))
        if args.per_user_limit is not None:
            limits = dict.fromkeys(skus, args.per_user_limit)
        span = crowd.duration
        crowd_text = f"{crowd.users:,} buyers, {crowd.pattern} over {crowd.duration:g} s, seed {crowd.seed}"
    if len(events) > args.max_requests:
        raise UsageError(f"{len(events):,} arrivals is more than --max-requests {args.max_requests:,}")
    max_time = args.max_time if args.max_time is not None else span + args.pay_after + GRACE_S
    if max_time <= 0:
        raise UsageError("--max-time must be > 0")
    settings = Settings(
        url=args.url.rstrip("/"),
        run_id=run_id,
        identity=identity,
        backoff=Backoff(args.retries, args.backoff, 2.0, args.backoff_cap),
        connections=args.connections,
        timeout=args.timeout,
        max_requests=args.max_requests,
        max_time=max_time,
        feed=args.feed,
        room=args.room,
        follow=args.room_follow,
        step=series_step(max_time),
    )
    return Prepared(settings, spec, thresholds, skus, limits, len(events), asked, span, crowd_text)


def _flag_crowd(args: argparse.Namespace, run_id: str) -> tuple[Crowd, float]:
    if not args.sku:
        raise UsageError("give --sku ID (one or more) or --scenario FILE")
    if args.buyers is None and args.rate is None:
        raise UsageError("give --buyers N or --rate R (with --duration S)")
    for name in ("rate", "duration", "pay_after"):
        v = getattr(args, name)
        if v is not None and (not math.isfinite(v) or v < 0 or (name != "pay_after" and v == 0)):
            raise UsageError(f"--{name.replace('_', '-')} must be a positive number")
    if not (0 <= args.pay <= 1 and 0 <= args.cancel <= 1 and args.pay + args.cancel <= 1):
        raise UsageError("--pay and --cancel are fractions with pay + cancel <= 1")
    if args.arrival == "burst" and args.rate is not None and args.buyers is not None:
        raise UsageError("a burst has no rate: give --buyers and --duration")
    if args.buyers is not None and args.rate is not None and args.duration is not None:
        raise UsageError("give two of --buyers, --rate, --duration: the third follows")
    if args.buyers is not None and args.rate is not None:
        duration = args.buyers / args.rate
    else:
        duration = args.duration if args.duration is not None else 10.0
    buyers = args.buyers if args.buyers is not None else round(args.rate * duration)
    if not 1 <= buyers <= 10_000_000:
        raise UsageError(f"the crowd must have 1 to 10,000,000 buyers, got {buyers:,}")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    crowd = flag_crowd(
        run_id=run_id,
        seed=seed,
        buyers=buyers,
        duration=duration,
        pattern=args.arrival,
        skus=args.sku,
        qty=args.qty,
        prefix=args.user_prefix,
        retries=args.retries,
        backoff=args.backoff,
        pay=args.pay,
        cancel=args.cancel,
        pay_after=args.pay_after,
    )
    asked = 0.0 if args.arrival == "burst" else buyers / duration
    return crowd, asked


def execute(prep: Prepared, *, procs: int, audit_orders: int, live: bool) -> RunResult:
    """Send, merge, audit: the run's result (thresholds checked)."""
    s = prep.settings
    view = LiveView(live, prep.span, s.url)
    with view:
        if procs == 1:
            outcome, seconds = run_here(s, prep.spec, s.max_requests, view)
        else:
            outcome, seconds = run_workers(s, prep.spec, procs, s.max_requests, view)
    verdict = asyncio.run(_audit(prep, outcome, audit_orders))
    result = RunResult(
        url=s.url,
        run_id=s.run_id,
        crowd=prep.crowd_text,
        procs=procs,
        asked_rate=prep.asked_rate,
        arrivals=prep.arrivals,
        seconds=seconds,
        outcome=outcome,
        verdict=verdict,
        thresholds=prep.thresholds,
    )
    result.breached = breaches(prep.thresholds, result.compute_figures())
    return result


async def _audit(prep: Prepared, outcome: Outcome, max_orders: int) -> Verdict:
    stats = outcome.stats
    return await audit(
        prep.settings.url,
        prep.settings.identity,
        orders=outcome.orders,
        bad_200=outcome.bad_200,
        bad_200_count=stats.skipped.get("200 without order_id", 0),
        http_5xx=stats.http_5xx,
        http_lost=stats.http_lost,
        first_lost=stats.failures[0] if stats.failures else None,
        skus=prep.skus,
        limits=prep.limits,
        max_orders=max_orders,
        request_timeout=prep.settings.timeout,
    )


def run(args: argparse.Namespace) -> int:
    """The ``load`` command; its exit status."""
    try:
        prep = prepare(args)
    except UsageError as exc:
        print(f"flashsale load: {exc}", file=sys.stderr)
        return EXIT_USAGE
    live = args.live if args.live is not None else sys.stderr.isatty()
    try:
        result = execute(prep, procs=args.procs, audit_orders=args.audit_orders, live=live)
    except (FeedError, RoomError, WorkerFailed) as exc:
        print(f"flashsale load: {exc}", file=sys.stderr)
        return 1
    print_summary(result)
    if args.json:
        with open(args.json, "wb") as f:
            f.write(orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    if args.report:
        write_report(result, args.report)
    if result.breached:
        names = ", ".join(t.text for t in result.breached)
        print(f"flashsale load: threshold breached: {names}", file=sys.stderr)
        return EXIT_BREACH
    return EXIT_INTERRUPTED if result.outcome.interrupted else 0
