"""Throwaway servers for tests and benchmarks: the audience is whoever tests a sale.

flashsale's own tests and ``bench/`` use these, and so can a service that
embeds flashsale: one place that knows how to start a real ``redis-server``
or PostgreSQL from the machine's binaries on a free loopback port, wait for
it to answer, and remove it afterwards. Nothing here is imported by the
engine itself.

- :func:`free_port`: a loopback TCP port nothing listens on.
- :func:`wait_until`: poll an external process with a deadline.
- :class:`RedisServer`, :class:`PostgresServer`: start, stop, kill, start
  again on the same port and data.
- :class:`ServerFailed`: a server did not come up; the message says why.
"""

from ._ports import free_port
from ._postgres import PostgresServer
from ._redis import RedisServer
from ._wait import ServerFailed, wait_until

__all__ = ["PostgresServer", "RedisServer", "ServerFailed", "free_port", "wait_until"]
