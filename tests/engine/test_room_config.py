"""The [waiting_room] table: exactly the issue's keys, each checked, named in every error."""

from __future__ import annotations

from typing import Any

import pytest

from flashsale import Config, ConfigError, from_datetime
from flashsale.config import RoomConfig

SKU = {"id": "a", "stock": 5, "starts_at": "2026-11-12T00:00:00Z"}


def _load(room: dict[str, Any], **top: Any) -> Config:
    return Config.from_mapping({"sku": [SKU], "waiting_room": room, **top}, "sale.toml")


def test_every_key_is_read() -> None:
    """All eight keys land in RoomConfig with their units (times in µs, durations in seconds)."""
    import datetime as dt  # noqa: PLC0415

    cfg = _load(
        {
            "opens_at": dt.datetime(2026, 11, 11, 23, 50, tzinfo=dt.UTC),
            "starts_at": "2026-11-12T00:00:00Z",
            "admit_rate": 200,
            "admit_burst": 150,
            "pass_ttl": 600,
            "heartbeat": 20,
            "pow_bits": 12,
            "secret_file": "room.key",
        }
    ).waiting_room
    assert cfg == RoomConfig(
        starts_at=from_datetime(dt.datetime(2026, 11, 12, tzinfo=dt.UTC)),
        opens_at=from_datetime(dt.datetime(2026, 11, 11, 23, 50, tzinfo=dt.UTC)),
        admit_rate=200.0,
        admit_burst=150,
        pass_ttl=600.0,
        heartbeat=20.0,
        pow_bits=12,
        secret_file="room.key",
    )


def test_defaults_and_the_draw_at_the_earliest_sku_start() -> None:
    """starts_at defaults to the earliest SKU starts_at; burst to the rate; no room without the table."""
    cfg = _load({"admit_rate": 50})
    assert cfg.waiting_room is not None
    assert cfg.waiting_room.starts_at == cfg.skus[0].starts_at
    assert (cfg.waiting_room.admit_burst, cfg.waiting_room.pass_ttl, cfg.waiting_room.heartbeat) == (50, 600.0, 20.0)
    assert (cfg.waiting_room.pow_bits, cfg.waiting_room.secret_file, cfg.waiting_room.opens_at) == (0, None, None)
    assert Config.from_mapping({"sku": [SKU]}).waiting_room is None


@pytest.mark.parametrize(
    ("room", "message"),
    [
        ({"admit_rat": 5}, "sale.toml: waiting_room: unknown key 'admit_rat'"),
        ({"admit_rate": 0}, "sale.toml: waiting_room.admit_rate: must be > 0"),
        ({"admit_rate": "fast"}, "sale.toml: waiting_room.admit_rate: must be int or float"),
        ({"admit_burst": 0}, "sale.toml: waiting_room.admit_burst: must be >= 1"),
        ({"admit_burst": 1_000_001}, "sale.toml: waiting_room.admit_burst: must be at most 1000000"),
        ({"heartbeat": 1e7}, "sale.toml: waiting_room.heartbeat: must be at most 1000000 seconds"),
        ({"pass_ttl": 1e7}, "sale.toml: waiting_room.pass_ttl: must be at most 1000000 seconds"),
        ({"pow_bits": 33}, "sale.toml: waiting_room.pow_bits: must be 0 to 32"),
        ({"pow_bits": -1}, "sale.toml: waiting_room.pow_bits: must be 0 to 32"),
        ({"heartbeat": 0}, "sale.toml: waiting_room.heartbeat: must be > 0 seconds"),
        ({"pass_ttl": -5}, "sale.toml: waiting_room.pass_ttl: must be > 0 seconds"),
        ({"secret_file": 5}, "sale.toml: waiting_room.secret_file: must be str"),
        ({"opens_at": "2026-11-12T00:00:01Z"}, "sale.toml: waiting_room.opens_at: must not be after starts_at"),
        ({"starts_at": "soon"}, "sale.toml: waiting_room.starts_at: not an ISO 8601 time"),
    ],
)
def test_bad_values_name_the_key(room: dict[str, Any], message: str) -> None:
    """Each wrong value is a ConfigError naming the file and the key."""
    with pytest.raises(ConfigError) as caught:
        _load(room)
    assert str(caught.value).startswith(message)


def test_starts_at_is_needed_without_a_sku_start() -> None:
    """With no SKU starts_at, starts_at must be given."""
    with pytest.raises(ConfigError, match=r"waiting_room\.starts_at: is required"):
        Config.from_mapping({"sku": [{"id": "a", "stock": 1}], "waiting_room": {}}, "sale.toml")


def test_the_table_round_trips() -> None:
    """to_mapping writes the table from_mapping reads back to the same config (scenario files)."""
    cfg = _load({"opens_at": "2026-11-11T23:00:00Z", "admit_rate": 7.5, "pow_bits": 3, "secret_file": "k"})
    assert Config.from_mapping(cfg.to_mapping()) == cfg
