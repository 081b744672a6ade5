"""Configuration: typed, validated, loaded from TOML (or any dict).

Every key is documented in the README's "Configuration" section. A wrong or
unknown key is a :class:`ConfigError` that names the file and the key, so a
typo never silently turns a limit off. Every mistake of a file is reported in
one run: the reader notes each one and goes on with the key's default, and
raises one :class:`ConfigError` listing them all at the end (``_reader.py``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from flashsale._clock import to_datetime
from flashsale._errors import ConfigError
from flashsale.actors import BucketSpec

from ._admin import AdminConfig
from ._auth import AuthConfig
from ._connections import ConnectionsConfig
from ._feed import FeedConfig
from ._room import RoomConfig
from ._sections import (
    LimitsConfig,
    PostgresConfig,
    RedisConfig,
    ServerConfig,
    SkuConfig,
    StoreConfig,
)


@dataclass(frozen=True, slots=True)
class Config:
    """A whole sale: its SKUs, store, limits and server."""

    skus: tuple[SkuConfig, ...]
    store: StoreConfig = field(default_factory=StoreConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    inventory_actors: int = 4
    tick_interval: float = 1.0
    backend: Literal["memory", "redis"] = "memory"
    redis: RedisConfig = field(default_factory=RedisConfig)
    postgres: PostgresConfig = field(default_factory=PostgresConfig)
    connections: ConnectionsConfig = field(default_factory=ConnectionsConfig)
    feed: FeedConfig = field(default_factory=FeedConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)  # [auth]: engine/config/_auth.py
    waiting_room: RoomConfig | None = None
    """``[waiting_room]``: the fair queue in front of the sale (``engine/config/_room.py``); ``None`` without one."""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "<config>") -> Config:
        """Build and validate a config from parsed TOML/JSON."""
        from ._reader import _Reader  # noqa: PLC0415 - _reader imports this module

        return _Reader(source).config(data)

    @classmethod
    def load(cls, path: str | Path) -> Config:
        """Read a TOML file."""
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
        return cls.from_mapping(data, str(p))

    def to_mapping(self) -> dict[str, Any]:
        """The config as :meth:`from_mapping` reads it (times as ISO 8601 strings): for scenario files."""

        def instant(at: int | None) -> str | None:
            return None if at is None else to_datetime(at).isoformat().replace("+00:00", "Z")

        skus = []
        for s in self.skus:
            table: dict[str, Any] = {"id": s.id, "stock": s.stock, "payment_timeout": s.payment_timeout}
            if s.name:
                table["name"] = s.name
            if s.per_user_limit is not None:
                table["per_user_limit"] = s.per_user_limit
            for key, at in (("starts_at", s.starts_at), ("ends_at", s.ends_at)):
                if at is not None:
                    table[key] = instant(at)
            skus.append(table)
        lim = self.limits
        limits: dict[str, Any] = {
            "max_tracked_users": lim.max_tracked_users,
            "max_qty": lim.max_qty,
            "max_inflight": lim.max_inflight,
            "max_writer_backlog": lim.max_writer_backlog,
            "idempotency_ttl": lim.idempotency_ttl,
            "max_idempotency_keys": lim.max_idempotency_keys,
            "max_idempotency_keys_per_buyer": lim.max_idempotency_keys_per_buyer,
            "max_idempotency_keys_per_ip": lim.max_idempotency_keys_per_ip,
        }
        for key, spec in (
            ("global", lim.global_bucket),
            ("per_sku", lim.per_sku),
            ("per_user", lim.per_user),
            ("per_ip", lim.per_ip),
        ):
            if spec is not None:
                limits[key] = {"algorithm": spec.algorithm, "rate": spec.rate, "burst": spec.burst}
                if spec.algorithm == "leaky":
                    limits[key]["queue"] = spec.queue
        mapping: dict[str, Any] = {
            "sku": skus,
            "store": {
                "path": self.store.path,
                "durability": self.store.durability,
                "synchronous": self.store.synchronous,
            },
            "limits": limits,
            "server": {
                "host": self.server.host,
                "port": self.server.port,
                "max_body_bytes": self.server.max_body_bytes,
                "log_level": self.server.log_level,
                "trusted_proxies": list(self.server.trusted_proxies),
                "access_log": self.server.access_log,
            },
            "engine": {"inventory_actors": self.inventory_actors, "tick_interval": self.tick_interval},
            "backend": self.backend,
            "redis": {f.name: getattr(self.redis, f.name) for f in fields(self.redis)},
            "postgres": {f.name: getattr(self.postgres, f.name) for f in fields(self.postgres)},
            "connections": {f.name: getattr(self.connections, f.name) for f in fields(self.connections)},
            "feed": self.feed.to_mapping(),  # [admin] and [auth] are left out: their tokens and keys are secrets
        }
        if self.waiting_room is not None:
            mapping["waiting_room"] = self.waiting_room.to_mapping(instant)
        return mapping

    def sku(self, sku_id: str) -> SkuConfig:
        for s in self.skus:
            if s.id == sku_id:
                return s
        raise KeyError(sku_id)


def demo_config(path: str = "flashsale-demo.db") -> Config:
    """The embedded demo: one hot SKU with 100 units, one with plenty."""
    return Config(
        skus=(
            SkuConfig("moutai-53", stock=100, per_user_limit=2, name="Kweichow Moutai 53% 500ml"),
            SkuConfig("tshirt", stock=100_000, per_user_limit=10, name="Launch-day T-shirt"),
        ),
        store=StoreConfig(path=path),
        limits=LimitsConfig(
            per_user=BucketSpec(rate=5.0, burst=10),
            per_ip=BucketSpec(rate=200.0, burst=400),
            per_sku=BucketSpec(rate=5000.0, burst=1000, algorithm="leaky", queue=2000),
        ),
    )
