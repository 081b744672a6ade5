"""The ``[connections]`` table: how long a client may take, and how many connections it may hold.

Slow clients are the cheapest attack on an HTTP server: a connection that
sends one header line every few seconds costs the attacker nothing and the
server a descriptor. These bounds cut such clients off (README, "Slow
clients and connection caps"):

- ``header_timeout``: seconds a connection has, from opening or from its
  last answer, to deliver a whole request head; an idle keep-alive
  connection is closed after the same time;
- ``body_timeout``: seconds to deliver a request body once the handler reads
  it (and the most an unread body is drained after the answer);
- ``max_per_ip``: connections open at once from one client address (an IPv6
  client's /64); peers in ``server.trusted_proxies`` are exempt, since every
  client behind them shares their address;
- ``max_total``: connections open at once in all; the server lowers it to
  stay :data:`FD_RESERVE` descriptors below the process's limit.

A connection beyond a cap is answered ``503 overloaded`` and closed at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

FD_RESERVE = 128
"""Descriptors kept free for everything but client connections: stores, Redis, PostgreSQL, logs."""


@dataclass(frozen=True, slots=True)
class ConnectionsConfig:
    """Timeouts and caps for client connections (all explicit, all with safe defaults)."""

    header_timeout: float = 10.0
    body_timeout: float = 10.0
    max_per_ip: int = 256
    max_total: int = 10_000


KEYS = frozenset({"header_timeout", "body_timeout", "max_per_ip", "max_total"})


def read_connections(
    t: Mapping[str, Any],
    seconds: Callable[[Mapping[str, Any], str, str, float], float],
    positive: Callable[[Mapping[str, Any], str, str, int], int],
) -> ConnectionsConfig:
    """``[connections]`` from its parsed table, checked with the config reader's ``seconds`` and ``positive``."""
    d = ConnectionsConfig()
    return ConnectionsConfig(
        header_timeout=seconds(t, "header_timeout", "connections", d.header_timeout),
        body_timeout=seconds(t, "body_timeout", "connections", d.body_timeout),
        max_per_ip=positive(t, "max_per_ip", "connections", d.max_per_ip),
        max_total=positive(t, "max_total", "connections", d.max_total),
    )
