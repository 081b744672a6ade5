"""Order stores for the embedded backend: SQLite (the default) and memory (replays, tests).

Both implement :class:`flashsale.actors.OrderStore`; the order writer actor
owns the one that is open and calls it from its own thread.
"""

from ._memory import MemoryOrderStore
from ._sqlite import SQLiteOrderStore

__all__ = ["MemoryOrderStore", "SQLiteOrderStore"]
