"""Before ``replay --against`` sends anything: is the server's sale the scenario's sale?

A scenario's invariants only mean something against a server that sells the
same SKUs with the same stock and per-user limits. The server lists its SKUs
at ``GET /v1/skus``; every difference is named, and no traffic is sent, so a
wrong server is reported as a configuration mismatch rather than as an
oversell or a limit violation. (``flashsale serve --scenario FILE`` serves
exactly the scenario's configuration.)
"""

from __future__ import annotations

import aiohttp

from flashsale import Scenario


async def config_mismatch(scenario: Scenario, url: str, session: aiohttp.ClientSession) -> list[str]:
    """What differs between ``scenario``'s SKUs and those the server at ``url`` lists (empty: they match)."""
    try:
        async with session.get(f"{url}/v1/skus") as resp:
            if resp.status != 200:
                return [f"GET {url}/v1/skus answered {resp.status}: is this a flashsale server?"]
            listed = (await resp.json(content_type=None))["skus"]
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
        return [f"cannot read the server's SKUs at {url}/v1/skus: {exc or type(exc).__name__}"]
    server = {s["sku"]: s for s in listed}
    differences = []
    for sku in scenario.config.skus:
        theirs = server.get(sku.id)
        if theirs is None:
            differences.append(f"{sku.id}: not on sale on the server (it sells {', '.join(server) or 'nothing'})")
            continue
        if theirs["stock"] != sku.stock:
            differences.append(f"{sku.id}: stock {theirs['stock']} on the server, {sku.stock} in the scenario")
        if theirs.get("per_user_limit") != sku.per_user_limit:
            differences.append(
                f"{sku.id}: per_user_limit {theirs.get('per_user_limit')} on the server,"
                f" {sku.per_user_limit} in the scenario"
            )
    return differences
