"""``[auth] mode = "jwt"`` with ``--workers 2`` on Redis and PostgreSQL: the same buyers, the same ownership.

Every request opens a fresh connection, so the kernel spreads them over
both workers (SO_REUSEPORT): an order made through one worker is read, paid
and refused through either.
"""

from __future__ import annotations

import asyncio
import collections
import re
from pathlib import Path
from typing import Any

import aiohttp
import jwt

from flashsale import RedisConfig
from tests.distributed.conftest import Workers, free_port
from tests.transport.authkit import SECRET, hs256

USERS = 30


def _config(tmp: Path, redis_config: RedisConfig, pg_url: str) -> Path:
    path = tmp / "sale.toml"
    path.write_text(
        f"""backend = "redis"

[[sku]]
id = "moutai-53"
stock = 40
per_user_limit = 2

[redis]
url = "{redis_config.url}"
prefix = "{redis_config.prefix}"

[postgres]
url = "{pg_url}"

[auth]
mode = "jwt"
jwt_algorithms = ["HS256"]
jwt_secret = "{SECRET}"
""",
        encoding="utf-8",
    )
    return path


async def _call(method: str, url: str, token: str | None, body: Any = None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s,
        s.request(method, url, headers=headers, json=body) as resp,
    ):
        return resp.status, await resp.json()


async def _sale(base: str) -> None:
    tokens = {f"u{i}": hs256({"sub": f"u{i}"}) for i in range(USERS)}
    bought = await asyncio.gather(
        *(_call("POST", f"{base}/v1/purchase", t, {"sku": "moutai-53", "qty": 1}) for t in tokens.values())
    )
    assert collections.Counter(s for s, _ in bought) == {200: USERS}
    orders = {u: b["order_id"] for u, (_, b) in zip(tokens, bought, strict=True)}
    assert all(re.fullmatch(r"moutai-53-\d+-[0-9a-f]{16}", o) for o in orders.values())
    assert len(set(orders.values())) == USERS
    mine = await asyncio.gather(*(_call("GET", f"{base}/v1/orders/{orders[u]}", t) for u, t in tokens.items()))
    assert [(s, b["user"]) for s, b in mine] == [(200, u) for u in tokens]
    users = list(tokens)
    theirs = await asyncio.gather(
        *(
            _call(method, f"{base}/v1/orders/{orders[users[(i + 1) % USERS]]}{path}", tokens[u])
            for i, u in enumerate(users)
            for method, path in (("GET", ""), ("POST", "/pay"), ("POST", "/cancel"))
        )
    )
    assert {(s, b["error"]) for s, b in theirs} == {(404, "unknown_order")}
    paid = await asyncio.gather(*(_call("POST", f"{base}/v1/orders/{orders[u]}/pay", t) for u, t in tokens.items()))
    assert {(s, b["status"]) for s, b in paid} == {(200, "paid")}
    forged = jwt.encode({"sub": "u0", "exp": 2**40}, "another-secret-that-is-32-bytes-long", algorithm="HS256")
    refused = await asyncio.gather(
        *(_call("POST", f"{base}/v1/purchase", tok, {"sku": "moutai-53"}) for tok in (None, forged) * 5)
    )
    assert {(s, b["error"]) for s, b in refused} == {(401, "unauthenticated")}


def test_jwt_buyers_and_ownership_across_two_workers(
    workers: Workers, tmp_path: Path, redis_config: RedisConfig, pg_url: str
) -> None:
    """Two workers on one Redis: tokens buy as their sub, orders answer only their buyer, bad tokens are 401."""
    port = free_port()
    workers.start(_config(tmp_path, redis_config, pg_url), port, "--workers", "2")
    asyncio.run(_sale(f"http://127.0.0.1:{port}"))
