"""The [feed] and [admin] config sections, and the live limits body checked like [limits]."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flashsale import Config, ConfigError
from flashsale.actors import BucketSpec
from flashsale.config import AdminConfig, FeedConfig, limit_changes

SKU = {"sku": [{"id": "a", "stock": 1}]}


def load(**sections: Any) -> Config:
    return Config.from_mapping({**SKU, **sections}, "sale.toml")


def test_feed_defaults() -> None:
    """Without [feed]: 10 events per SKU per second, 20,000 listeners, 64 KiB per listener, a ping every 15 s."""
    assert load().feed == FeedConfig(10.0, 20_000, 65_536, 15.0)


@pytest.mark.parametrize(
    ("table", "where"),
    [({"max_rate": 0}, "feed.max_rate"), ({"max_rate": 5000}, "feed.max_rate"),
     ({"max_listeners": 0}, "feed.max_listeners"), ({"max_buffer": 10}, "feed.max_buffer"),
     ({"ping_interval": -1}, "feed.ping_interval"), ({"rate": 1}, "feed"),
     ({"max_listeners": "many"}, "feed.max_listeners")],
)  # fmt: skip
def test_feed_refuses_bad_values(table: dict[str, Any], where: str) -> None:
    """A bad [feed] value is a ConfigError naming the file and the key."""
    with pytest.raises(ConfigError, match=f"sale.toml: {where}"):
        load(feed=table)


def test_admin_token_from_a_file(tmp_path: Path) -> None:
    """[admin] token_file is read at load, whitespace stripped; the token never shows in the config's repr."""
    path = tmp_path / "token"
    path.write_text("  a-long-enough-admin-token\n")
    config = load(admin={"token_file": str(path)})
    assert config.admin.token == "a-long-enough-admin-token"
    assert "a-long-enough" not in repr(config)
    assert "admin" not in config.to_mapping()


@pytest.mark.parametrize(
    ("table", "message"),
    [({"token": "short-secret"}, "admin.token: the token must be at least 16"),
     ({"token_file": "/nonexistent/token"}, "admin.token_file: cannot read"),
     ({"token": "x" * 20, "token_file": "/tmp/t"}, "not both"), ({"user": "x"}, "unknown key")],
)  # fmt: skip
def test_admin_refuses_bad_tokens(table: dict[str, Any], message: str) -> None:
    """A short, unreadable or doubly given token is a ConfigError that never repeats the token."""
    with pytest.raises(ConfigError, match=message) as info:
        load(admin=table)
    assert "short-secret" not in str(info.value)


def test_no_admin_section_means_no_admin_api() -> None:
    """Without [admin] the admin API is off."""
    assert load().admin == AdminConfig()
    assert not load().admin.enabled


def test_limit_changes_keep_what_is_not_given() -> None:
    """A limits body changes only the given rate or burst of a configured scope; algorithm and queue stay."""
    current = {"per_sku": BucketSpec(100.0, 10, "leaky", 50)}
    assert limit_changes({"per_sku": {"burst": 20}}, current) == {"per_sku": BucketSpec(100.0, 20, "leaky", 50)}


@pytest.mark.parametrize(
    ("body", "message"),
    [({"per_sku": {"rate": 0}}, "limits.per_sku.rate: must be > 0"),
     ({"per_sku": {"rate": 10_000_000}}, "leaky bucket's rate is at most"),
     ({"per_user": {"rate": 1}}, "limits.per_user: is not configured"),
     ({"per_sku": {"queue": 5}}, "unknown key 'queue'"), ([], "body: must be a table")],
)  # fmt: skip
def test_limit_changes_are_checked_like_the_config(body: Any, message: str) -> None:
    """A limits body gets the [limits] section's own checks, and names the key."""
    with pytest.raises(ConfigError, match=message):
        limit_changes(body, {"per_sku": BucketSpec(100.0, 10, "leaky", 50)})
