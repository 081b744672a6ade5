"""schemathesis holds the admin API's room routes to the document on a server whose room is running.

(tests/transport/test_schemathesis.py fuzzes every route on a sale without a
room, where these answer 401 or 409 not_configured; here they act.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from flashsale import Config, SkuConfig, StoreConfig, wall_clock
from flashsale.config import RoomConfig
from flashsale.transport._dashboard_session import SessionSigner
from flashsale.transport._openapi import document

from ..live import LiveServer, live_server  # noqa: TID252 - the shared live-server helper

TOKEN = "schemathesis-admin-token-0123"
CHECKS = {
    "positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"]},
    "negative_data_rejection": {"expected-statuses": ["400", "401", "403", "404", "405", "409", "413", "422", "429"]},
}
AUTH = {"dashboardSession": {"api_key": SessionSigner(TOKEN).issue()}, "adminBearer": {"bearer": TOKEN}}


def sale(path: Path | str = "orders.db") -> Config:
    """A sale whose waiting room has been admitting for a minute."""
    started = wall_clock() - 60_000_000
    return Config(
        skus=(SkuConfig("moutai-53", stock=1_000_000),),
        store=StoreConfig(path=str(path)),
        waiting_room=RoomConfig(starts_at=started, opens_at=started - 60_000_000, admit_rate=100.0, admit_burst=100),
    )


schema = schemathesis.openapi.from_dict(
    document(sale()),
    config=SchemathesisConfig.from_dict({"checks": CHECKS, "auth": {"openapi": AUTH}, "max-stream-events": 1}),
).include(path_regex="^/v1/admin/room")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """The sale with a room on a real socket, with an admin token."""
    with live_server(sale(tmp_path / "orders.db"), TOKEN) as live:
        yield live


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_room_admin_routes_answer_as_documented(case: Any, server: LiveServer) -> None:
    """With a room running, every generated request to a room admin route gets a documented answer, never a 5xx."""
    case.call_and_validate(base_url=server.url, timeout=10)
