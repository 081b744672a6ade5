"""The waiting room: a fair queue in front of a sale.

:class:`Room` is the loop side (joins batched to the room actor in
``flashsale.actors``, polls answered from its published board, passes and
proof of work checked); :class:`RoomCalls` puts its calls on
:class:`flashsale.SaleEngine`. The ``[waiting_room]`` table is read by
``flashsale.config`` (:class:`flashsale.config.RoomConfig`).
"""

from ._api import RoomCalls
from ._door import BUYER_CHARS
from ._errors import RoomRefused, UnknownTicket
from ._gateway import Room, make_room
from ._ids import seeded_ids
from ._types import Challenge, Draw, RoomStatus, TicketStatus

__all__ = [
    "BUYER_CHARS",
    "Challenge",
    "Draw",
    "Room",
    "RoomCalls",
    "RoomRefused",
    "RoomStatus",
    "TicketStatus",
    "UnknownTicket",
    "make_room",
    "seeded_ids",
]
