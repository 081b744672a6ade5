"""The backends flashsale ships, by the name ``config.backend`` gives."""

from __future__ import annotations

from flashsale.actors import OrderStore

from ._backend import Backend
from ._errors import ConfigError
from ._memory_backend import MemoryBackend
from .config import Config


def backend_for(config: Config, store: OrderStore | None) -> Backend:
    """The backend ``config.backend`` names; ``store`` is the memory backend's order store."""
    if config.backend == "redis":
        try:
            from .redis import RedisBackend  # noqa: PLC0415 - only this backend needs redis and psycopg
        except ImportError as exc:
            raise ConfigError(
                f'backend = "redis" needs the redis extra ({exc.name} is missing): pip install "flashsale[redis]"'
            ) from exc
        return RedisBackend()
    return MemoryBackend(config, store)
