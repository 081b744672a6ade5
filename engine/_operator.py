"""An operator's actions on a running sale: pause, resume or end a SKU, change a rate limit live.

:class:`SaleEngine` exposes them (:meth:`SaleEngine.control`,
:meth:`SaleEngine.set_limits`, :attr:`SaleEngine.limits`); the admin API
calls those. Each action is a message to the actor that owns what it
changes, sent behind the purchases that arrived before it, and is recorded
(``serve --record``) so a replay does the same at the same instant.

Every process of a sale sees an action. A pause or end is applied by the
SKU's owner: in memory by the inventory actor, on a shared ledger by a Lua
call, so every process's purchases meet it in Redis at once. A limit change
on a backend with shared limits (``share_limits``, the Redis backend) is
stored there: the shared per-user and per-IP buckets read it on their next
call, and each process's own global and per-SKU scopes take it on its next
tick (:meth:`Operator.follow`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from flashsale.actors import BucketSpec, SaleAction, Scope, SetLimits, SetSale, SkuView

from ._backend import ask
from ._errors import EngineClosed, InvalidRequest
from ._types import TickReport

if TYPE_CHECKING:
    from ._engine import SaleEngine


class SharedLimits(Protocol):
    """What a backend whose processes share rate limits offers (the Redis backend)."""

    async def share_limits(self, changes: list[tuple[Scope, BucketSpec]]) -> None: ...

    async def shared_limits(self) -> dict[str, tuple[float, int]]: ...


class Operator:
    """The operator's side of one engine."""

    def __init__(self, engine: SaleEngine) -> None:
        self._engine = engine
        lim = engine.config.limits
        scopes: tuple[tuple[Scope, BucketSpec | None], ...] = (
            ("global", lim.global_bucket),
            ("per_sku", lim.per_sku),
            ("per_user", lim.per_user),
            ("per_ip", lim.per_ip),
        )
        self.limits: dict[Scope, BucketSpec] = {name: spec for name, spec in scopes if spec is not None}

    async def _ask(self, ref: Any, make: Callable[[Any], object]) -> Any:
        loop = self._engine._loop
        if not self._engine.running or loop is None:
            raise EngineClosed("the sale engine is not running")
        return await ask(loop, ref, make)

    def _shared(self) -> SharedLimits | None:
        backend: Any = self._engine._backend
        return backend if hasattr(backend, "share_limits") else None

    async def control(self, sku: str, action: SaleAction) -> tuple[SkuView, SkuView]:
        engine = self._engine
        before = engine.view(sku)
        if action not in ("pause", "resume", "end"):
            raise InvalidRequest("action", "must be pause, resume or end")
        if not engine.running:
            raise EngineClosed("the sale engine is not running")
        at = engine.clock()
        engine._send_batch()
        owner = engine._pipeline.inventory_of[sku]
        after = await self._ask(owner, lambda fut: SetSale(sku, action, at, fut))
        assert isinstance(after, SkuView)
        if engine._recorder is not None:
            engine._recorder.operation(at, action, sku=sku)
        return before, after

    async def set_limits(self, changes: dict[Scope, BucketSpec]) -> dict[Scope, BucketSpec]:
        engine = self._engine
        if not engine.running:
            raise EngineClosed("the sale engine is not running")
        for name, spec in changes.items():
            old = self.limits.get(name)
            if old is None:
                raise InvalidRequest(f"limits.{name}", "is not configured; only a configured scope changes live")
            if (spec.algorithm, spec.queue) != (old.algorithm, old.queue):
                raise InvalidRequest(f"limits.{name}", "only rate and burst change live")
        before = {name: self.limits[name] for name in changes}
        at = engine.clock()
        shared = self._shared()
        if shared is not None:
            await shared.share_limits(list(changes.items()))
        await self._apply(changes, at)
        if engine._recorder is not None:
            for name, spec in changes.items():
                engine._recorder.operation(at, "limits", scope=name, rate=spec.rate, burst=spec.burst)
        return before

    async def _apply(self, changes: dict[Scope, BucketSpec], at: int) -> None:
        """Take ``changes`` here: this process's limiter applies the scopes it keeps."""
        engine = self._engine
        self.limits.update(changes)
        limiter = engine._pipeline.limiter
        if limiter is not None:
            engine._send_batch()
            await self._ask(limiter, lambda fut: SetLimits(tuple(changes.items()), at, fut))

    def tick(self, tick: Callable[[], Awaitable[TickReport]]) -> Callable[[], Awaitable[TickReport]]:
        """``tick`` that first takes the limits other processes' operators changed (the engine's timer runs it)."""

        async def run() -> TickReport:
            await self.follow()
            return await tick()

        return run

    async def follow(self) -> None:
        """Take the limit changes another process's operator stored in the shared backend (once per tick)."""
        shared = self._shared()
        if shared is None:
            return
        live = await shared.shared_limits()
        changes: dict[Scope, BucketSpec] = {}
        for name, spec in self.limits.items():
            shape = live.get(name)
            if shape is not None and shape != (spec.rate, spec.burst):
                changes[name] = BucketSpec(shape[0], shape[1], spec.algorithm, spec.queue)
        if changes:
            await self._apply(changes, self._engine.clock())
