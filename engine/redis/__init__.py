"""The distributed backend: a sale shared by many processes through Redis and PostgreSQL.

:class:`RedisBackend` is what :class:`flashsale.SaleEngine` runs on with
``backend = "redis"``.

:class:`RedisLedger` decides and records purchases in Lua scripts on Redis
(:mod:`._lua`); :class:`OrderSink` moves the orders stream into PostgreSQL
(:mod:`._schema`); :class:`RedisRoomLedger` keeps the waiting room of
every worker (:mod:`._room_lua`), its seed kept in PostgreSQL too
(:class:`RoomSeeds`). Importing this package imports ``redis`` and ``psycopg``:
only ``backend = "redis"`` does, through the ``flashsale[redis]`` extra.
"""

from ._archive import OrderArchive
from ._backend import RedisBackend
from ._ledger import RedisLedger
from ._probe import probe_postgres, probe_redis
from ._rebuild import RebuildError, SaleRebuilder
from ._room import RedisRoomLedger
from ._room_seed import RoomSeeds
from ._sink import OrderSink
from ._sink_gauges import SinkGauges
from ._sink_stream import stream_key

__all__ = [
    "OrderArchive",
    "OrderSink",
    "RebuildError",
    "RedisBackend",
    "RedisLedger",
    "RedisRoomLedger",
    "RoomSeeds",
    "SaleRebuilder",
    "SinkGauges",
    "probe_postgres",
    "probe_redis",
    "stream_key",
]
