"""The README's examples are real: its config parses with every key it documents."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from flashsale import Config

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_config_is_a_valid_config() -> None:
    """The TOML block in the README loads, and its values are the ones it shows."""
    block = re.search(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block is not None
    config = Config.from_mapping(tomllib.loads(block.group(1)), "README.md")
    sku = config.sku("moutai-53")
    assert (sku.stock, sku.per_user_limit, sku.payment_timeout) == (100, 2, 900)
    assert sku.starts_at is not None
    assert sku.ends_at is not None
    assert sku.ends_at - sku.starts_at == 600_000_000
    assert config.limits.per_user is not None
    assert (config.limits.per_user.rate, config.limits.per_user.burst) == (5, 10)
    assert config.limits.per_sku is not None
    assert (config.limits.per_sku.algorithm, config.limits.per_sku.queue) == ("leaky", 5000)
    assert config.limits.per_ip is not None
    assert config.server.trusted_proxies == ("127.0.0.1", "10.0.0.0/8")
    assert config.store.durability == "commit"
    assert config.inventory_actors == 4


def test_readme_names_the_two_commands() -> None:
    """The README shows `make serve` and `make test`, and CI runs the latter."""
    text = README.read_text(encoding="utf-8")
    assert "make serve" in text
    assert "make test" in text
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci
