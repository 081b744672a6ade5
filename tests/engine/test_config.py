"""Configuration: every key read from TOML, and a ConfigError naming file and key for every mistake."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flashsale import (
    Config,
    ConfigError,
    FlashsaleError,
    LimitsConfig,
    PostgresConfig,
    RedisConfig,
    ServerConfig,
    SkuConfig,
    StoreConfig,
    demo_config,
    from_datetime,
)
from flashsale.actors import BucketSpec

FULL = """
backend = "redis"

[[sku]]
id = "moutai-53"
stock = 100
per_user_limit = 2
payment_timeout = 600
starts_at = 2026-11-11T00:00:00Z
ends_at = "2026-11-11T02:00:00+00:00"
name = "Kweichow Moutai 53% 500ml"

[[sku]]
id = "tshirt"
stock = 0

[store]
path = "/var/lib/flashsale/orders.db"
durability = "async"
synchronous = "full"

[limits]
global = { rate = 5000, burst = 10000 }
per_sku = { algorithm = "leaky", rate = 800, burst = 50, queue = 1000 }
per_user = { rate = 2.5 }
per_ip = { algorithm = "token", rate = 20, burst = 40 }
max_tracked_users = 1000
max_qty = 5
max_inflight = 64
max_writer_backlog = 128
idempotency_ttl = 3600
max_idempotency_keys = 500

[server]
host = "0.0.0.0"
port = 9000
max_body_bytes = 1024
log_level = "DEBUG"
trusted_proxies = ["127.0.0.1", "10.0.0.0/8", "fd00::/8"]

[engine]
inventory_actors = 2

[redis]
url = "redis://10.0.0.5:6380/2"
prefix = "singles-day"
timeout = 0.25
breaker_failures = 5
breaker_reset = 1

[postgres]
url = "postgresql://shop@10.0.0.6/sales"
batch = 200
claim_idle = 10
"""

ELEVEN_ELEVEN = from_datetime(datetime(2026, 11, 11, tzinfo=UTC))
HOUR = 3_600_000_000


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sale.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_key_is_read(tmp_path: Path) -> None:
    """A file that sets every key gives exactly the Config it describes."""
    assert Config.load(_write(tmp_path, FULL)) == Config(
        skus=(
            SkuConfig(
                "moutai-53",
                100,
                per_user_limit=2,
                payment_timeout=600.0,
                starts_at=ELEVEN_ELEVEN,
                ends_at=ELEVEN_ELEVEN + 2 * HOUR,
                name="Kweichow Moutai 53% 500ml",
            ),
            SkuConfig("tshirt", 0),
        ),
        store=StoreConfig(path="/var/lib/flashsale/orders.db", durability="async", synchronous="full"),
        limits=LimitsConfig(
            global_bucket=BucketSpec(rate=5000.0, burst=10000),
            per_sku=BucketSpec(rate=800.0, burst=50, algorithm="leaky", queue=1000),
            per_user=BucketSpec(rate=2.5, burst=2),
            per_ip=BucketSpec(rate=20.0, burst=40),
            max_tracked_users=1000,
            max_qty=5,
            max_inflight=64,
            max_writer_backlog=128,
            idempotency_ttl=3600.0,
            max_idempotency_keys=500,
        ),
        server=ServerConfig(
            host="0.0.0.0",
            port=9000,
            max_body_bytes=1024,
            log_level="debug",
            trusted_proxies=("127.0.0.1", "10.0.0.0/8", "fd00::/8"),
        ),
        inventory_actors=2,
        backend="redis",
        redis=RedisConfig("redis://10.0.0.5:6380/2", "singles-day", 0.25, 5, 1.0),
        postgres=PostgresConfig("postgresql://shop@10.0.0.6/sales", 200, 10.0),
    )


@pytest.mark.parametrize("text", [FULL, '[[sku]]\nid = "a"\nstock = 1\n'], ids=["full", "minimal"])
def test_to_mapping_reads_back_to_the_same_config(tmp_path: Path, text: str) -> None:
    """to_mapping() (what a recorded scenario states) is read back by from_mapping() as the same Config."""
    config = Config.load(_write(tmp_path, text))
    assert Config.from_mapping(config.to_mapping()) == config


def test_defaults(tmp_path: Path) -> None:
    """Only [[sku]] is required; everything else has its documented default."""
    config = Config.load(_write(tmp_path, '[[sku]]\nid = "a"\nstock = 1\n'))
    assert config == Config(skus=(SkuConfig("a", 1),))
    assert config.store == StoreConfig("flashsale.db", "commit", "normal")
    assert config.limits == LimitsConfig()
    assert config.server == ServerConfig()
    assert config.inventory_actors == 4
    assert config.backend == "memory"
    assert config.redis == RedisConfig("redis://127.0.0.1:6379/0", "fs", 0.5, 3, 2.0)
    assert config.postgres == PostgresConfig("postgresql://127.0.0.1:5432/flashsale", 500, 30.0)


def test_from_mapping_matches_load(tmp_path: Path) -> None:
    """from_mapping of a parsed dict gives what load gives for the same TOML."""
    assert Config.from_mapping(tomllib.loads(FULL)) == Config.load(_write(tmp_path, FULL))


@pytest.mark.parametrize(
    "value",
    ["2026-11-11T08:00:00+08:00", "2026-11-11T00:00:00Z", "2026-11-10T19:00:00-05:00", "2026-11-11 00:00:00Z"],
)
def test_instants_in_any_offset(value: str) -> None:
    """starts_at strings with an offset or a Z all name the same instant."""
    config = Config.from_mapping({"sku": [{"id": "a", "stock": 1, "starts_at": value}]})
    assert config.skus[0].starts_at == ELEVEN_ELEVEN


@pytest.mark.parametrize(
    "line", ["starts_at = 2026-11-11T00:00:00", 'starts_at = "2026-11-11T00:00:00"', 'starts_at = "2026-11-11"']
)
def test_a_time_without_offset_is_refused(tmp_path: Path, line: str) -> None:
    """A local date-time (TOML or string) is an error that says it has no offset and how to write one."""
    with pytest.raises(ConfigError, match=r"sku\[0\]\.starts_at: 2026-11-11T00:00:00 has no UTC offset.*Z for UTC"):
        Config.load(_write(tmp_path, f'[[sku]]\nid = "a"\nstock = 1\n{line}\n'))


def test_sku_lookup() -> None:
    """Config.sku finds a SKU by id and raises KeyError for others."""
    config = Config.from_mapping({"sku": [{"id": "a", "stock": 1}, {"id": "b", "stock": 2}]})
    assert config.sku("b").stock == 2
    with pytest.raises(KeyError):
        config.sku("c")


def test_demo_config_is_valid() -> None:
    """The embedded demo sale has a hot SKU with a per-user limit and a path of its own."""
    demo = demo_config("x.db")
    assert demo.store.path == "x.db"
    assert demo.skus[0].per_user_limit is not None
    assert demo.limits.per_user is not None


GOOD_SKU = '[[sku]]\nid = "a"\nstock = 1\n'


@pytest.mark.parametrize(
    ("text", "where", "says"),
    [
        # unknown keys, at every level
        ("colour = 1\n" + GOOD_SKU, "top level", "unknown key 'colour'"),
        ('[[sku]]\nid = "a"\nstock = 1\nprice = 5\n', "sku[0]", "unknown key 'price'"),
        (GOOD_SKU + "[store]\ndurabilty = 'commit'\n", "store", "unknown key 'durabilty'"),
        (GOOD_SKU + "[limits]\nmax_qtty = 1\n", "limits", "unknown key 'max_qtty'"),
        (GOOD_SKU + "[limits]\nper_user = { rate = 1, bursts = 2 }\n", "limits.per_user", "unknown key 'bursts'"),
        (GOOD_SKU + "[server]\nprot = 80\n", "server", "unknown key 'prot'"),
        (GOOD_SKU + "[engine]\nactors = 2\n", "engine", "unknown key 'actors'"),
        # wrong types and ranges
        ('[[sku]]\nid = "a"\nstock = "10"\n', "sku[0].stock", "must be int"),
        ('[[sku]]\nid = "a"\nstock = true\n', "sku[0].stock", "must be int"),
        ('[[sku]]\nid = "a"\nstock = 1.5\n', "sku[0].stock", "must be int"),
        ('[[sku]]\nid = "a"\nstock = -1\n', "sku[0].stock", "must be >= 0"),
        ("[[sku]]\nid = 7\nstock = 1\n", "sku[0].id", "must be str"),
        ('[[sku]]\nid = "a"\nstock = 1\nper_user_limit = 0\n', "sku[0].per_user_limit", "must be >= 1"),
        ('[[sku]]\nid = "a"\nstock = 1\nper_user_limit = false\n', "sku[0].per_user_limit", "must be int"),
        ('[[sku]]\nid = "a"\nstock = 1\npayment_timeout = 0\n', "sku[0].payment_timeout", "must be > 0 seconds"),
        ('[[sku]]\nid = "a"\nstock = 1\npayment_timeout = "15m"\n', "sku[0].payment_timeout", "must be int or float"),
        ('[[sku]]\nid = "a"\nstock = 1\nname = 3\n', "sku[0].name", "must be str"),
        ('[[sku]]\nid = "a"\n', "sku[0]", "needs 'id' and 'stock'"),
        (GOOD_SKU + "[limits]\nmax_qty = 1.5\n", "limits.max_qty", "must be int"),
        (GOOD_SKU + "[limits]\nmax_inflight = 0\n", "limits.max_inflight", "must be >= 1"),
        (GOOD_SKU + "[limits]\nidempotency_ttl = -1\n", "limits.idempotency_ttl", "must be > 0 seconds"),
        (GOOD_SKU + "[limits]\nglobal = { burst = 5 }\n", "limits.global", "needs 'rate'"),
        (GOOD_SKU + "[limits]\nglobal = { rate = 0 }\n", "limits.global.rate", "must be > 0"),
        (GOOD_SKU + "[limits]\nper_user = { rate = 1, burst = 0 }\n", "limits.per_user.burst", "must be >= 1"),
        (GOOD_SKU + "[limits]\nper_user = 5\n", "limits.per_user", "must be a table"),
        (GOOD_SKU + "[limits]\nper_ip = { rate = 1, quantum = 2 }\n", "limits.per_ip", "unknown key 'quantum'"),
        (GOOD_SKU + "[limits]\nper_sku = { rate = 1, algorithm = 'drip' }\n", "limits.per_sku.algorithm", "must be"),
        (GOOD_SKU + "[limits]\nper_sku = { rate = 1, algorithm = 3 }\n", "limits.per_sku.algorithm", "must be str"),
        (GOOD_SKU + "[limits]\nglobal = { rate = 1, queue = 5 }\n", "limits.global.queue", "only a leaky bucket"),
        (
            GOOD_SKU + "[limits]\nglobal = { rate = 1, algorithm = 'leaky', queue = -1 }\n",
            "limits.global.queue",
            "must be >= 0",
        ),
        (GOOD_SKU + "[limits]\nglobal = { rate = 1, queue = 1.5 }\n", "limits.global.queue", "must be int"),
        (
            GOOD_SKU + "[limits]\nper_sku = { rate = 2e6, algorithm = 'leaky' }\n",
            "limits.per_sku",
            "rate is at most 1000000",
        ),
        (GOOD_SKU + "[server]\ntrusted_proxies = '10.0.0.1'\n", "server.trusted_proxies", "must be a list"),
        (GOOD_SKU + "[server]\ntrusted_proxies = [10]\n", "server.trusted_proxies", "must be a list"),
        (
            GOOD_SKU + "[server]\ntrusted_proxies = ['proxy.local']\n",
            "server.trusted_proxies",
            "'proxy.local' is not an IP address or network",
        ),
        (
            GOOD_SKU + "[server]\ntrusted_proxies = ['10.0.0.1/8']\n",
            "server.trusted_proxies",
            "'10.0.0.1/8' is not an IP address or network",
        ),
        (GOOD_SKU + "[server]\nport = '80'\n", "server.port", "must be int"),
        (GOOD_SKU + "[server]\nport = 70000\n", "server.port", "must be 0-65535"),
        (GOOD_SKU + "[server]\nlog_level = 'loud'\n", "server.log_level", "must be debug, info, warning or error"),
        (GOOD_SKU + "[engine]\ninventory_actors = 0\n", "engine.inventory_actors", "must be >= 1"),
        ("store = 'x'\n" + GOOD_SKU, "store", "must be a table"),
        # backend and its servers
        ("backend = 'etcd'\n" + GOOD_SKU, "backend", "must be 'memory' or 'redis'"),
        ("backend = 1\n" + GOOD_SKU, "backend", "must be 'memory' or 'redis'"),
        (GOOD_SKU + "[redis]\nhost = 'x'\n", "redis", "unknown key 'host'"),
        (GOOD_SKU + "[redis]\nurl = 'localhost:6379'\n", "redis.url", "must start with redis://"),
        (GOOD_SKU + "[redis]\nprefix = 'a:b'\n", "redis.prefix", "must be 1-64 of"),
        (GOOD_SKU + "[redis]\ntimeout = 0\n", "redis.timeout", "must be > 0 seconds"),
        (GOOD_SKU + "[redis]\nbreaker_failures = 0\n", "redis.breaker_failures", "must be >= 1"),
        (GOOD_SKU + "[redis]\nbreaker_reset = -1\n", "redis.breaker_reset", "must be > 0 seconds"),
        (GOOD_SKU + "[postgres]\nurl = 'mysql://x'\n", "postgres.url", "must start with postgresql://"),
        (GOOD_SKU + "[postgres]\nbatch = 0\n", "postgres.batch", "must be >= 1"),
        (GOOD_SKU + "[postgres]\nclaim_idle = 0\n", "postgres.claim_idle", "must be > 0 seconds"),
        (GOOD_SKU + "[postgres]\nurl = 5\n", "postgres.url", "must be str"),
        (
            "backend = 'redis'\n" + GOOD_SKU + "[limits.per_ip]\nalgorithm = 'leaky'\nrate = 5\nqueue = 10\n",
            "limits.per_ip.queue",
            "shared by every process through Redis and cannot queue",
        ),
        # bad durability
        (GOOD_SKU + "[store]\ndurability = 'sometimes'\n", "store.durability", "must be 'commit' or 'async'"),
        (GOOD_SKU + "[store]\ndurability = true\n", "store.durability", "must be str"),
        (GOOD_SKU + "[store]\nsynchronous = 'off'\n", "store.synchronous", "must be 'normal' or 'full'"),
        # skus: none, duplicate, windows
        ("[store]\npath = 'x'\n", "sku", "needs at least one [[sku]] table"),
        ("sku = []\n", "sku", "needs at least one [[sku]] table"),
        ("sku = 'a'\n", "sku", "needs at least one [[sku]] table"),
        (GOOD_SKU + GOOD_SKU, "sku", "id 'a' appears twice"),
        (
            '[[sku]]\nid = "a"\nstock = 1\nstarts_at = 2026-11-11T02:00:00Z\nends_at = 2026-11-11T01:00:00Z\n',
            "sku[0].ends_at",
            "must be after starts_at",
        ),
        (
            '[[sku]]\nid = "a"\nstock = 1\nstarts_at = 2026-11-11T02:00:00Z\nends_at = 2026-11-11T02:00:00Z\n',
            "sku[0].ends_at",
            "must be after starts_at",
        ),
        ('[[sku]]\nid = "a"\nstock = 1\nstarts_at = "tomorrow"\n', "sku[0].starts_at", "not an ISO 8601 time"),
        ('[[sku]]\nid = "a"\nstock = 1\nstarts_at = 5\n', "sku[0].starts_at", "must be a date-time"),
        ('[[sku]]\nid = "a"\nstock = 1\nends_at = 2026-11-11\n', "sku[0].ends_at", "must be a date-time"),
    ],
)
def test_config_errors_name_file_and_key(tmp_path: Path, text: str, where: str, says: str) -> None:
    """Each mistake is a ConfigError that starts with the file, then the key, then what is wrong."""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        Config.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {where}: ")
    assert says in message


@pytest.mark.parametrize("sku_id", ["", "-a", ".a", "a b", "a/b", "ü", "a" * 65, "a\n"])
def test_bad_sku_ids(sku_id: str) -> None:
    """SKU ids are 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit."""
    with pytest.raises(ConfigError, match=r"^sale\.toml: sku\[0\]\.id: .* must be 1-64 of"):
        Config.from_mapping({"sku": [{"id": sku_id, "stock": 1}]}, "sale.toml")


@pytest.mark.parametrize("sku_id", ["a", "A9", "moutai-53", "x.y_z", "9" * 64])
def test_good_sku_ids(sku_id: str) -> None:
    """Ids that fit the rule are accepted as they are."""
    assert Config.from_mapping({"sku": [{"id": sku_id, "stock": 1}]}).skus[0].id == sku_id


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    """A missing file or broken TOML is a ConfigError naming the file."""
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=f"^{missing}: cannot read"):
        Config.load(missing)
    broken = _write(tmp_path, "[[sku]\nid = ")
    with pytest.raises(ConfigError, match=f"^{broken}: not valid TOML"):
        Config.load(broken)


def test_config_error_is_a_value_error() -> None:
    """ConfigError is both a FlashsaleError and a ValueError."""
    with pytest.raises(ConfigError) as info:
        Config.from_mapping({})
    assert isinstance(info.value, FlashsaleError)
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith("<config>: ")


def test_every_mistake_is_reported_in_one_run(tmp_path: Path) -> None:
    """A file with several mistakes in several tables gets one ConfigError that lists each of them."""
    path = _write(
        tmp_path,
        '[[sku]]\nid = "gpu"\nstock = 2\nper_user_limt = 1\n\n'
        '[[sku]]\nid = "cpu"\nstock = "ten"\n\n'
        "[limits]\nper_user = { rate = 5, brust = 10 }\nmax_qty = 0\n\n"
        "[server]\nport = 70000\nlog_lvl = 'debug'\n",
    )
    with pytest.raises(ConfigError) as info:
        Config.load(path)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{path}: 6 errors:"
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "sku[0]",
        "sku[1].stock",
        "limits.per_user",
        "limits.max_qty",
        "server",
        "server.port",
    ]
    assert "unknown key 'per_user_limt'" in lines[1]
    assert "unknown key 'brust'" in lines[3]
    assert "unknown key 'log_lvl'" in lines[5]
