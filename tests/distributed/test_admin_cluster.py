"""The admin API on two ``flashsale serve`` processes sharing Redis: an action on one holds on the other.

Pause, resume and end live in the ledger (the Lua purchase path checks
them); a restock changes the shared stock; a limit change lives in Redis
(the shared per-user scope reads it at once, each process's own scopes at
its next tick). Each process's feed follows the shared state.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from flashsale import RedisConfig
from tests.distributed.conftest import Workers, free_port, wait_until

TOKEN = "cluster-admin-token-0123456789"


def write_config(tmp: Path, redis_config: RedisConfig, pg_url: str) -> Path:
    path = tmp / "sale.toml"
    path.write_text(
        f"""backend = "redis"

[[sku]]
id = "moutai-53"
stock = 100

[limits.global]
rate = 10000
burst = 1000

[limits.per_user]
rate = 0.001
burst = 1

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


def call(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def buy(port: int, user: str) -> tuple[int, str]:
    status, body = call(port, "POST", "/v1/purchase", {"sku": "moutai-53", "user": user})
    return status, body.get("result") or body["error"]


def test_admin_actions_hold_on_every_process(
    workers: Workers, tmp_path: Path, redis_config: RedisConfig, pg_url: str
) -> None:
    """Pause, resume, restock, limits and end taken on one process are seen by the other."""
    config = write_config(tmp_path, redis_config, pg_url)
    a, b = free_port(), free_port()
    workers.start(config, a)
    workers.start(config, b)
    for port in (a, b):  # the order sink reaches PostgreSQL a moment after listening: until then, 503
        wait_until(lambda port=port: call(port, "GET", "/readyz")[0] == 200, 10, f"{port} ready")
    feed = http.client.HTTPConnection("127.0.0.1", b, timeout=10)
    try:
        _follow_the_admin(a, b, feed)
    finally:
        feed.close()


def _follow_the_admin(a: int, b: int, feed: http.client.HTTPConnection) -> None:
    feed.request("GET", "/v1/skus/moutai-53/events")
    stream = feed.getresponse()
    assert stream.status == 200

    assert call(a, "POST", "/v1/admin/skus/moutai-53/pause")[0] == 200
    assert buy(b, "u0") == (409, "sale_paused")
    wait_until(lambda: call(b, "GET", "/v1/skus/moutai-53")[1]["state"] == "paused", 10, "b sees the pause")
    while True:  # b's feed reports the pause too
        line = stream.readline().decode()
        if line.startswith("data: ") and json.loads(line[6:])["state"] == "paused":
            break
    assert call(b, "POST", "/v1/admin/skus/moutai-53/resume")[0] == 200
    assert buy(a, "u1") == (200, "reserved")

    assert call(a, "POST", "/v1/admin/skus/moutai-53/restock", {"qty": 50})[0] == 200
    wait_until(lambda: call(b, "GET", "/v1/skus/moutai-53")[1]["stock"] == 150, 10, "b sees the restock")

    assert buy(b, "u1") == (429, "rate_limited")  # the per-user bucket is shared: u1 spent it on a
    status, body = call(a, "PUT", "/v1/admin/limits", {"per_user": {"rate": 1000, "burst": 5}, "global": {"burst": 7}})
    assert (status, body["limits"]["global"]["burst"]) == (200, 7)
    wait_until(lambda: buy(b, "u1")[0] == 200, 10, "b admits u1 at the new per-user rate")
    wait_until(
        lambda: call(b, "GET", "/v1/admin/overview")[1]["limits"]["global"]["burst"] == 7, 10, "b's own global scope"
    )

    assert call(b, "POST", "/v1/admin/skus/moutai-53/end")[0] == 200
    assert buy(a, "u2") == (409, "sale_not_open")
    stream.close()


def test_metrics_of_any_worker_count_every_worker(
    workers: Workers, tmp_path: Path, redis_config: RedisConfig, pg_url: str
) -> None:
    """Under --workers 2 every scrape of the shared port sums both workers' counters and lists each one's gauges."""
    config = write_config(tmp_path, redis_config, pg_url)
    port = free_port()
    workers.start(config, port, "--workers", "2")
    wait_until(lambda: buy(port, "m0")[0] == 200, 10, "both order sinks ready")  # a 503 before holds nothing
    for i in range(1, 40):  # a new connection per request: the kernel spreads them over both workers
        assert buy(port, f"m{i}") == (200, "reserved")

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            return resp.read().decode()

    total = 'flashsale_purchases_total{result="reserved"} 40.0'
    wait_until(lambda: total in scrape(), 5, "every worker's purchases in one scrape")  # each publishes once a second
    for _ in range(6):
        text = scrape()
        assert total in text
        workers_seen = {
            line.split('worker="')[1].split('"')[0] for line in text.splitlines() if "flashsale_inflight{" in line
        }
        assert len(workers_seen) == 2, text
