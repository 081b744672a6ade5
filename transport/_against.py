"""``flashsale replay FILE --against URL``: a scenario's traffic against a live server.

The traffic is sent in real time — each event at its ``at`` after the
start, as many in flight as it takes up to ``concurrency`` — with the
scenario's feedback: retries after retryable answers (after back-off), and
pays and cancels after reservations. Live timing decides who wins, so the
scenario's own expectations do not apply; what is checked is what holds
whatever the timing:

- ``no 5xx``: no answer was a server error, and every request got an answer;
- ``every 200 has its order``: each reserved order id is found with its
  buyer, SKU and quantity (``GET /v1/orders/{id}``);
- ``no oversell``: per SKU, ``reserved + paid <= stock`` and ``remaining +
  reserved + paid == stock`` (``GET /v1/skus/{sku}``), and the live orders
  this run made hold no more units than that;
- ``per-user limits``: no buyer holds more units of a SKU than its
  ``per_user_limit``.

Restock, expire and admin events (pause, resume, end, limits, the room's
pause, resume and rate) and the room's recorded ticks are skipped (they need
the admin token; a server delivers its own time) and counted as skipped.
An event's ``ip`` goes out as ``X-Forwarded-For``.

With a waiting room the room traffic goes out too: each ``join`` joins (with
proof of work when the room asks it), each ``poll`` reads the buyer's ticket
(the one its join gave here, whatever id the file names) and keeps the pass
it shows, and each purchase carries the pass the buyer's polls returned; a
crowd's ``room`` buyer joins and waits for admission before each click.

This is a mode of ``flashsale load`` (``flashsale.transport.load``): the same
sender (open-loop schedule, one keep-alive pool, idempotency keys, tenacity
retries as each event's retry policy says) and the same audit; only the
report keeps its own shape.
"""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from flashsale import Scenario

from ._mismatch import config_mismatch
from ._serve_scenario import faster
from .load._audit import audit
from .load._identity import Identity
from .load._retry import Backoff
from .load._sender import Settings, send_all

US = 1_000_000
GRACE_S = 60.0  # how long after the last event answers and follow-ups may take


@dataclass
class AgainstReport:
    """What the server answered and which invariants held."""

    url: str
    scenario: str
    answers: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    failed_requests: list[str] = field(default_factory=list)  # the first few
    no_answer: int = 0  # requests without an answer, all of them
    server_errors: int = 0
    max_lag: float = 0.0
    wall_seconds: float = 0.0
    checks: dict[str, str] = field(default_factory=dict)  # invariant -> "" when it held, else why not
    mismatch: list[str] = field(default_factory=list)  # how the server's sale differs; nothing was sent

    @property
    def violations(self) -> list[str]:
        return [f"{name}: {why}" for name, why in self.checks.items() if why]

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "scenario": self.scenario,
            "answers": dict(sorted(self.answers.items())),
            "skipped": dict(self.skipped),
            "failed_requests": self.no_answer,
            "server_errors": self.server_errors,
            "max_lag_seconds": round(self.max_lag, 6),
            "wall_seconds": round(self.wall_seconds, 6),
            "checks": {name: {"ok": not why, "detail": why} for name, why in self.checks.items()},
            "mismatch": self.mismatch,
        }

    def summary(self) -> str:
        if self.mismatch:
            return "\n".join(
                [
                    f"scenario   {self.scenario} against {self.url}",
                    "MISMATCH   the server is not selling this scenario's sale; no traffic was sent",
                    *(f"  differs  {m}" for m in self.mismatch),
                    "           (flashsale serve --scenario FILE serves a scenario's configuration)",
                ]
            )
        lines = [
            f"scenario   {self.scenario} against {self.url}",
            f"answers    {' · '.join(f'{k} {v:,}' for k, v in sorted(self.answers.items())) or '-'}",
        ]
        if self.skipped:
            lines.append(f"skipped    {' · '.join(f'{k} {v:,}' for k, v in self.skipped.items())}")
        lines.append(f"timing     {self.wall_seconds:.3f} s; at most {self.max_lag * 1000:.1f} ms behind the scenario")
        for name, why in self.checks.items():
            lines.append(f"{'VIOLATED' if why else 'ok':10} {name}{': ' + why if why else ''}")
        return "\n".join(lines)


async def run_against(scenario: Scenario, url: str, *, concurrency: int = 64, speed: float = 1.0) -> AgainstReport:
    """Send ``scenario``'s traffic to the server at ``url`` in real time; check the invariants.

    Nothing is sent to a server that sells another sale: the report's
    ``mismatch`` says how it differs. ``speed`` sends the traffic that many
    times faster, for a server run with ``flashsale serve --scenario FILE --speed N``.
    """
    import time  # noqa: PLC0415

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        mismatch = await config_mismatch(scenario, url.rstrip("/"), session)
    if mismatch:
        return AgainstReport(url.rstrip("/"), scenario.name, mismatch=mismatch)
    events = faster(scenario.traffic(), speed)
    span = events[-1].at / US if events else 0.0
    settings = Settings(
        url=url.rstrip("/"),
        run_id=secrets.token_hex(4),
        identity=Identity(),
        backoff=Backoff(max=0),  # a scenario event retries only as its own policy says
        connections=concurrency,
        timeout=30.0,
        max_time=span + GRACE_S,
        feed="off",
        room="auto" if scenario.config.waiting_room is not None else "off",
        scripted=True,
    )
    began = time.perf_counter()
    outcome = await send_all(settings, list(enumerate(events)), budget=10 * len(events) + 1000)
    stats = outcome.stats
    report = AgainstReport(url, scenario.name, wall_seconds=time.perf_counter() - began)
    for phase, p in stats.phases.items():
        for key, n in p.status.items():
            if key != "lost":
                report.answers[key if phase == "purchase" else f"{phase} {key}"] += n
    for reason, n in stats.skipped.items():
        op, _, why = reason.partition(": ")
        if why == "no reservation":
            report.answers[f"{op} no_reservation"] += n
        else:
            report.skipped[reason] += n
    report.failed_requests = list(stats.failures)
    report.no_answer = stats.http_lost
    report.server_errors = stats.http_5xx
    report.max_lag = stats.lag.get_max_value() / US if stats.lag.get_total_count() else 0.0
    verdict = await audit(
        settings.url,
        settings.identity,
        orders=outcome.orders,
        bad_200=outcome.bad_200,
        bad_200_count=stats.skipped.get("200 without order_id", 0),
        http_5xx=stats.http_5xx,
        http_lost=stats.http_lost,
        first_lost=stats.failures[0] if stats.failures else None,
        skus=[s.id for s in scenario.config.skus],
        limits={s.id: s.per_user_limit for s in scenario.config.skus if s.per_user_limit is not None},
        max_orders=len(outcome.orders) + 1,
    )
    report.checks = verdict.checks
    return report
