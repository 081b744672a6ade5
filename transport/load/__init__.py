"""``flashsale load URL``: rehearse a sale against your own server and fail the run when the sale went wrong.

A crowd of simulated buyers (a scenario file's traffic, or flags) sent
open-loop by the clock over one keep-alive pool per process, latencies from
the scheduled send time in HDR histograms per phase, merged exactly across
``--procs``; retries of 429/503 with the same idempotency key; the stock feed
and the waiting room when the server has them; a verdict audited through
the API; k6-style thresholds; ``--json`` and ``--report``.

Modules: ``_command`` (the command line), ``_plan`` (the crowd as events),
``_sender`` (the schedule and the buyers), ``_http`` (requests, timed),
``_retry`` (tenacity back-off), ``_identity`` (credentials), ``_feed`` and
``_room`` (the flows that need the server's feed and room), ``_procs``
(worker processes), ``_stats`` (histograms), ``_audit`` (the verdict),
``_thresholds``, ``_result``, ``_summary``, ``_live``, ``_report``.
"""

from ._command import add_parser, run
from ._sender import Outcome, Settings, send_all

__all__ = ["Outcome", "Settings", "add_parser", "run", "send_all"]
