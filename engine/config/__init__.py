"""A sale's configuration: the TOML file, its validation, and the demo sale.

:class:`Config` is what every part of flashsale reads; :meth:`Config.load`
reads a TOML file and :meth:`Config.from_mapping` a parsed one, raising
:class:`flashsale.ConfigError` with the key and the reason.
"""

from ._admin import SCOPES, AdminConfig, limit_changes
from ._auth import AuthConfig
from ._config import Config, demo_config
from ._connections import ConnectionsConfig
from ._feed import FeedConfig
from ._room import RoomConfig
from ._sections import (
    SKU_ID,
    LimitsConfig,
    PostgresConfig,
    RedisConfig,
    ServerConfig,
    SkuConfig,
    StoreConfig,
)

__all__ = [
    "SCOPES",
    "SKU_ID",
    "AdminConfig",
    "AuthConfig",
    "Config",
    "ConnectionsConfig",
    "FeedConfig",
    "LimitsConfig",
    "PostgresConfig",
    "RedisConfig",
    "RoomConfig",
    "ServerConfig",
    "SkuConfig",
    "StoreConfig",
    "demo_config",
    "limit_changes",
]
