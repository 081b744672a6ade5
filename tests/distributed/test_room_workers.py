"""The waiting room with two ``flashsale serve`` workers on Redis: one queue, one draw, one pace, passes good on both.

Two processes on one config (what ``--workers 2`` starts, each on its own
port here so a test can say which worker it asks), then ``--workers 2`` on
one port for joins spread by the kernel. Everything is checked from outside,
over HTTP, on real time.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flashsale import RedisConfig
from tests.distributed.conftest import Workers, free_port, wait_until

TOKEN = "room-admin-token-0123456789abcdef"
RATE, BURST, TTL = 2, 1, 60
USERS = [f"u{n}" for n in range(12)]


def _config(tmp: Path, redis_config: RedisConfig, pg_url: str, starts: datetime) -> Path:
    key = tmp / "room.key"
    key.write_bytes(b"the room key every worker shares")
    path = tmp / "sale.toml"
    path.write_text(
        f"""backend = "redis"

[[sku]]
id = "console"
stock = 3
per_user_limit = 1

[waiting_room]
opens_at = {(starts - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")}
starts_at = {starts.strftime("%Y-%m-%dT%H:%M:%SZ")}
admit_rate = {RATE}
admit_burst = {BURST}
pass_ttl = {TTL}
heartbeat = 3
secret_file = "{key}"

[admin]
token = "{TOKEN}"

[redis]
url = "{redis_config.url}"
prefix = "{redis_config.prefix}"

[postgres]
url = "{pg_url}"

[engine]
tick_interval = 0.2
""",
        encoding="utf-8",
    )
    return path


def call(port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _micros(iso: str) -> int:
    when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def test_two_workers_run_one_room(workers: Workers, tmp_path: Path, redis_config: RedisConfig, pg_url: str) -> None:
    """Joins on both, one draw checked with the formula, the pace held across both, a pass good on the other,
    the operator heard by both, and sold out closing every ticket on both."""
    starts = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0)
    config = _config(tmp_path, redis_config, pg_url, starts)
    a, b = free_port(), free_port()
    workers.start(config, a)
    workers.start(config, b)
    for port in (a, b):
        wait_until(lambda port=port: call(port, "GET", "/readyz")[0] == 200, 20, f"{port} ready")

    tickets: dict[str, str] = {}
    for n, user in enumerate(USERS):
        status, body = call((a, b)[n % 2], "POST", "/v1/room/join", {"user": user})
        assert (status, body["state"]) == (201, "pre_queue"), body
        tickets[user] = body["ticket"]
    status, body = call(b, "POST", "/v1/room/join", {"user": "u0"})  # joined on a
    assert (status, body["ticket"]) == (200, tickets["u0"])
    rooms = [call(port, "GET", "/v1/room")[1] for port in (a, b)]
    assert rooms[0]["commitment"] == rooms[1]["commitment"]
    assert rooms[0]["seed"] is None
    wait_until(lambda: call(b, "GET", "/v1/room")[1]["waiting"] == len(USERS), 10, "b counts every ticket")

    seen: dict[str, dict[str, Any]] = {}
    turn = [0]

    def poll_all() -> dict[str, dict[str, Any]]:
        """Poll every ticket (its heartbeat), on the workers in turn; keep each ticket's latest view."""
        for user, ticket in tickets.items():
            turn[0] += 1
            status, view = call((a, b)[turn[0] % 2], "GET", f"/v1/room/tickets/{ticket}?user={user}")
            assert status == 200, view
            seen[user] = view
        return seen

    def admitted() -> list[dict[str, Any]]:
        return [v for v in poll_all().values() if v["state"] == "admitted"]

    wait_until(lambda: len(admitted()) >= 3, 20, "three admitted")
    draws = [call(port, "GET", "/v1/room/draw") for port in (a, b)]
    assert draws[0] == draws[1]
    assert draws[0][0] == 200
    draw = draws[0][1]
    seed = bytes.fromhex(draw["seed"])
    assert hashlib.sha256(seed).hexdigest() == draw["commitment"] == rooms[0]["commitment"]
    assert draw["tickets"] == sorted(draw["tickets"], key=lambda t: hashlib.sha256(seed + t.encode("ascii")).digest())
    assert sorted(draw["tickets"]) == sorted(tickets.values())

    # The pace across both workers: by any admission's instant, at most burst + rate x elapsed admitted.
    times = sorted(_micros(v["pass_expires_at"]) - TTL * 1_000_000 for v in admitted())
    start_us = _micros(starts.strftime("%Y-%m-%dT%H:%M:%SZ"))
    for k, at in enumerate(times, 1):
        assert k <= BURST + RATE * (at - start_us) / 1_000_000, (k, at - start_us)
    order = [v["ticket"] for v in sorted(admitted(), key=lambda v: v["pass_expires_at"])]
    assert order == draw["tickets"][: len(order)]  # in drawn order

    assert call(a, "POST", "/v1/admin/room/pause")[1]["state"] == "paused"
    wait_until(lambda: call(b, "GET", "/v1/room")[1]["state"] == "paused", 10, "b sees the pause")
    assert call(b, "POST", "/v1/admin/room/resume")[1]["state"] == "admitting"
    wait_until(lambda: call(a, "GET", "/v1/room")[1]["state"] == "admitting", 10, "a sees the resume")
    assert call(a, "PUT", "/v1/admin/room", {"admit_rate": 0.25})[0] == 200
    wait_until(lambda: call(b, "GET", "/v1/room")[1]["admit_rate"] == 0.25, 10, "b sees the new rate")

    buyers = [u for u, v in seen.items() if v["state"] == "admitted"][:3]
    assert call(b, "POST", "/v1/purchase", {"sku": "console", "user": buyers[0]})[1]["error"] == "admission_required"
    for n, user in enumerate(buyers):
        token = call(a, "GET", f"/v1/room/tickets/{tickets[user]}?user={user}")[1]["pass"]  # minted on a
        status, body = call(b if n == 0 else a, "POST", "/v1/purchase", {"sku": "console", "user": user},
                            {"Admission-Pass": token})  # fmt: skip
        assert (status, body.get("result")) == (200, "reserved"), body

    for port in (a, b):
        wait_until(lambda port=port: call(port, "GET", "/v1/room")[1]["state"] == "closed", 10, f"{port} closed")
        assert call(port, "GET", "/v1/room")[1]["closed_reason"] == "sold_out"
        assert call(port, "POST", "/v1/room/join", {"user": "late"})[1]["error"] == "room_closed"
        states = {call(port, "GET", f"/v1/room/tickets/{t}?user={u}")[1]["state"] for u, t in tickets.items()}
        assert states == {"admitted", "closed"}, states


def test_workers_2_on_one_port_share_the_room(
    workers: Workers, tmp_path: Path, redis_config: RedisConfig, pg_url: str
) -> None:
    """``--workers 2``: joins spread over both processes by the kernel all land in one room."""
    starts = (datetime.now(UTC) + timedelta(minutes=2)).replace(microsecond=0)  # opened 3 minutes ago
    port = free_port()
    workers.start(_config(tmp_path, redis_config, pg_url, starts), port, "--workers", "2")
    wait_until(lambda: call(port, "GET", "/readyz")[0] == 200, 20, "ready")
    for user in USERS:  # a new connection each: both workers take some
        assert call(port, "POST", "/v1/room/join", {"user": user})[0] == 201
    again = [call(port, "POST", "/v1/room/join", {"user": user})[0] for user in USERS]
    assert again == [200] * len(USERS)  # whichever worker answers knows the ticket

    def counts() -> set[int]:
        return {call(port, "GET", "/v1/room")[1]["waiting"] for _ in range(10)}

    wait_until(lambda: counts() == {len(USERS)}, 10, "every worker counts every ticket")
