"""The live view: snapshots of several processes merged into one picture."""

from __future__ import annotations

import io

from rich.console import Console

from flashsale.transport.load._live import LiveView, snapshot
from flashsale.transport.load._stats import Stats


def test_snapshots_of_two_processes_are_drawn_together() -> None:
    """Totals add up over processes; the rolling percentiles cover the answers of both."""
    view = LiveView(False, 10.0, "http://127.0.0.1:1")
    for proc in (0, 1):
        s = Stats()
        for i in range(100):
            s.sent(i / 50)
            s.answered("purchase", "409 sold_out", i / 50, i / 50 + 0.002 * (proc + 1))
        view.latest[proc] = snapshot(s, 2.5)
    out = io.StringIO()
    Console(file=out, width=160).print(view.render())
    text = out.getvalue()
    assert "sent 200, answered 200, errors 0" in text
    assert "409 200" in text
    assert "purchase" in text
    assert "200 answers" in text
    assert "7.5 s of the schedule left" in text
