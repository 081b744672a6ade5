"""SyncSaleEngine: the engine for threaded services (Flask, Django, WSGI).

It runs a :class:`SaleEngine` on its own event loop in a background thread
and turns each call into a blocking one for the calling thread only. Calls
from many threads at once are fine: they are batched on the engine's loop
exactly like concurrent HTTP requests. The waiting room's calls are here too:
the ones that need no message (a poll, the room's status, a pass check) run
on the engine's loop as well, since the room's state lives there.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

from flashsale.actors import Order, Outcome, RoomTickReport, RoomView, SkuView
from flashsale.config import Config
from flashsale.room import Challenge, Draw, RoomStatus, TicketStatus

from ._clock import Clock
from ._engine import SaleEngine
from ._types import SkuStatus, TickReport

T = TypeVar("T")


class SyncSaleEngine:
    """A blocking face for :class:`SaleEngine`: ``with SyncSaleEngine(cfg) as e:``.

    ``clock`` and ``room_seed`` are :class:`SaleEngine`'s (virtual time; a waiting room's fixed draw).
    """

    def __init__(
        self, config: Config, *, clock: Clock | None = None, timeout: float = 30.0, room_seed: bytes | None = None
    ) -> None:
        self.engine = SaleEngine(config, clock=clock, room_seed=room_seed)
        self._timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="flashsale-loop", daemon=True)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self._timeout)

    def _on_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a plain call of the engine on its loop (the room's state is the loop's) and return its result."""

        async def run() -> T:
            return fn(*args)

        return self._call(run())

    def start(self) -> None:
        """Start the loop thread and the engine."""
        self._thread.start()
        try:
            self._call(self.engine.start())
        except BaseException:
            self._close_loop()  # ``with`` will not call stop() when start() fails
            raise

    def stop(self) -> None:
        """Stop the engine (flushing every order) and the loop thread."""
        if not self._thread.is_alive():
            if not self._loop.is_closed():  # never started: the loop still needs closing
                self._loop.close()
            return
        try:
            self._call(self.engine.stop())
        finally:
            self._close_loop()

    def _close_loop(self) -> None:
        try:
            self._call(self._loop.shutdown_default_executor())  # joins the store's worker thread
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(self._timeout)
            self._loop.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def purchase(
        self, sku: str, user: str, qty: int = 1, *, idempotency_key: str | None = None, client_ip: str | None = None
    ) -> Outcome:
        """Blocking :meth:`SaleEngine.purchase`."""
        return self._call(self.engine.purchase(sku, user, qty, idempotency_key=idempotency_key, client_ip=client_ip))

    def sku_status(self, sku: str) -> SkuStatus:
        """Blocking :meth:`SaleEngine.sku_status`."""
        return self._call(self.engine.sku_status(sku))

    def order(self, order_id: str, *, user: str) -> Order:
        """Blocking :meth:`SaleEngine.order` (only ``user``'s own order)."""
        return self._call(self.engine.order(order_id, user=user))

    def pay(self, order_id: str, *, user: str) -> Order:
        """Blocking :meth:`SaleEngine.pay` (only ``user``'s own order)."""
        return self._call(self.engine.pay(order_id, user=user))

    def cancel(self, order_id: str, *, user: str) -> Order:
        """Blocking :meth:`SaleEngine.cancel` (only ``user``'s own order)."""
        return self._call(self.engine.cancel(order_id, user=user))

    def restock(self, sku: str, qty: int) -> SkuView:
        """Blocking :meth:`SaleEngine.restock`."""
        return self._call(self.engine.restock(sku, qty))

    def tick(self) -> TickReport:
        """Blocking :meth:`SaleEngine.tick`: expire overdue reservations, release queued purchases."""
        return self._call(self.engine.tick())

    def flush(self) -> None:
        """Blocking :meth:`SaleEngine.flush`."""
        self._call(self.engine.flush())

    # -- the waiting room (flashsale.room.RoomCalls) ----------------------------

    def join(self, user: str, *, challenge: str | None = None, nonce: str | None = None) -> tuple[TicketStatus, bool]:
        """Blocking :meth:`SaleEngine.join`: ``(ticket, created)`` once the room has placed the ticket."""
        return self._call(self.engine.join(user, challenge=challenge, nonce=nonce))

    def ticket(self, ticket: str, user: str) -> TicketStatus:
        """:meth:`SaleEngine.ticket`: poll a ticket as its holder (its heartbeat)."""
        return self._on_loop(self.engine.ticket, ticket, user)

    def room_status(self) -> RoomStatus:
        """:meth:`SaleEngine.room_status`."""
        return self._on_loop(self.engine.room_status)

    def room_draw(self) -> Draw:
        """:meth:`SaleEngine.room_draw`."""
        return self._on_loop(self.engine.room_draw)

    def room_challenge(self) -> Challenge:
        """:meth:`SaleEngine.room_challenge`."""
        return self._on_loop(self.engine.room_challenge)

    def check_pass(self, admission_pass: str | None, user: str) -> tuple[str, str]:
        """:meth:`SaleEngine.check_pass`: ``("", "")`` when the pass admits ``user`` now."""
        return self._on_loop(self.engine.check_pass, admission_pass, user)

    def room_tick(self) -> RoomTickReport:
        """Blocking :meth:`SaleEngine.room_tick` (virtual time: the caller ticks)."""
        return self._call(self.engine.room_tick())

    def pause_room(self) -> RoomView:
        """Blocking :meth:`SaleEngine.pause_room`."""
        return self._call(self.engine.pause_room())

    def resume_room(self) -> RoomView:
        """Blocking :meth:`SaleEngine.resume_room`."""
        return self._call(self.engine.resume_room())

    def set_admit_rate(self, rate: float) -> RoomView:
        """Blocking :meth:`SaleEngine.set_admit_rate`."""
        return self._call(self.engine.set_admit_rate(rate))
