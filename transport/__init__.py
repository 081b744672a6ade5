"""flashsale's HTTP transport: the aiohttp app, its routes, logging and the CLI.

``create_app(config)`` builds the application; ``flashsale serve`` runs it.
Nothing here knows an actor: everything goes through :class:`engine.SaleEngine`.
"""

from ._app import ENGINE, METRICS, create_app
from ._cli import main
from ._logging import configure_logging

__all__ = ["ENGINE", "METRICS", "configure_logging", "create_app", "main"]
