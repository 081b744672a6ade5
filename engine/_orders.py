"""Order operations behind :class:`SaleEngine`: look up, pay, cancel.

An order is answered for by one actor, which the backend names
(:meth:`Backend.order_owner`): the order writer in memory mode, the owner of
the order's SKU on a ledger. Refusals come back as a :class:`ChangeResult`
and are raised here as the engine's exceptions.

Every call acts for one buyer (authenticated by the caller: the transport,
or the embedding service): an order of anyone else is :class:`UnknownOrder`,
exactly as for an id that does not exist.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from flashsale.actors import ChangeOrder, ChangeResult, GetOrder, Order

from ._backend import Backend, ask
from ._errors import EngineClosed, TransitionRefused, Unavailable, UnknownOrder
from ._validate import check_buyer, check_order_id

if TYPE_CHECKING:
    from .scenario import ScenarioRecorder


class OrderDesk:
    """Answers order calls for one engine; lives as long as it.

    ``loop`` returns the engine's loop while it runs, else ``None``.
    """

    __slots__ = ("_backend", "_clock", "_loop", "_recorder")

    def __init__(
        self,
        backend: Backend,
        clock: Callable[[], int],
        loop: Callable[[], asyncio.AbstractEventLoop | None],
        recorder: ScenarioRecorder | None,
    ) -> None:
        self._backend = backend
        self._clock = clock
        self._loop = loop
        self._recorder = recorder

    async def get(self, order_id: str, user: str) -> Order:
        check_buyer(user)
        check_order_id(order_id)
        loop, owner = self._route(order_id)
        found = await ask(loop, owner, lambda fut: GetOrder(order_id, fut))
        if found is None:
            found = await self._archived(order_id)
        if found is None:
            raise UnknownOrder(order_id)
        assert isinstance(found, Order)
        if not hmac.compare_digest(found.user.encode(), user.encode()):  # constant time: timing tells nothing
            raise UnknownOrder(order_id)
        return found

    async def change(self, order_id: str, status: Literal["paid", "cancelled"], user: str) -> Order:
        # An order's buyer never changes: checking it first and changing after cannot race.
        await self.get(order_id, user)
        at = self._clock()
        loop, owner = self._route(order_id)
        result = await ask(loop, owner, lambda fut: ChangeOrder(order_id, status, at, fut))
        assert isinstance(result, ChangeResult)
        if self._recorder is not None:
            self._recorder.operation(at, "pay" if status == "paid" else "cancel", order=order_id, user=user)
        if result.refused == "unknown_order":
            stored = await self._archived(order_id)  # final orders of a sale Redis lost are in PostgreSQL only
            if stored is not None and stored.status != "reserved":
                raise TransitionRefused(stored, "not_reserved")
            raise UnknownOrder(order_id)
        if result.refused == "unavailable":
            raise Unavailable("the order store could not record the change")
        assert result.order is not None
        if result.refused:
            raise TransitionRefused(result.order, result.refused)
        return result.order

    async def _archived(self, order_id: str) -> Order | None:
        """The order from the backend's archive, where it keeps one (redis: PostgreSQL), else ``None``."""
        archived = getattr(self._backend, "archived", None)
        return None if archived is None else await archived(order_id)

    def _route(self, order_id: str) -> tuple[asyncio.AbstractEventLoop, Any]:
        loop = self._loop()
        if loop is None:
            raise EngineClosed("the sale engine is not running")
        owner = self._backend.order_owner(order_id)
        if owner is None:
            raise UnknownOrder(order_id)
        return loop, owner
