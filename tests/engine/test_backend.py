"""The backend is chosen once at start: by config.backend, or passed in; a missing extra is one clear error."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from flashsale import SaleEngine, SkuConfig
from flashsale._memory_backend import MemoryBackend
from flashsale.actors import Result
from flashsale.stores import MemoryOrderStore
from tests.conftest import MakeConfig


class Refusing(MemoryBackend):
    """A memory backend that refuses every purchase reaching it, as a backend whose store is down would."""

    name = "refusing"

    def refusal(self, at: int) -> tuple[Result, str] | None:
        return "unavailable", f"refused at {at}"

    def readiness(self) -> dict[str, bool]:
        return {**super().readiness(), "refusing": True}


async def test_a_backend_of_ones_own(make_config: MakeConfig) -> None:
    """SaleEngine(backend=...) runs on it: its refusal answers on the loop, its checks join /readyz."""
    config = make_config(SkuConfig("a", 5))
    engine = SaleEngine(config, backend=Refusing(config, MemoryOrderStore()))
    async with engine:
        outcome = await engine.purchase("a", "u1")
        assert outcome.result == "unavailable"
        assert outcome.detail.startswith("refused at ")
        assert engine.view("a").remaining == 5
        assert engine.readiness()["refusing"] is True
        assert next(iter(engine.readiness())) == "running"
        assert list(engine.readiness())[-1] == "below_inflight_limit"


def test_redis_backend_without_the_extra_names_it() -> None:
    """``backend = "redis"`` where redis is not installed raises ConfigError naming flashsale[redis]."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["redis"] = None  # as if the [redis] extra were not installed
        from flashsale import Config, ConfigError, SaleEngine, SkuConfig
        try:
            SaleEngine(Config(skus=(SkuConfig("a", 1),), backend="redis"))
        except ConfigError as exc:
            print(exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert 'pip install "flashsale[redis]"' in out.stdout
