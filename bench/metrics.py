"""What counting a purchase costs on the hot path: ``python bench/metrics.py``.

Side by side, per purchase answered: flashsale's on-loop tallies (a result
counter and the request-duration histogram, as :func:`guarded` and the
purchase handler bump them) against prometheus_client's own labelled
``Counter.inc`` + ``Histogram.observe``, in normal and in multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``). Each in a fresh subprocess: prometheus_client
picks its value class at import.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import timeit

N = 300_000


def ours() -> float:
    from flashsale.transport._metrics import Metrics  # noqa: PLC0415

    m = Metrics()

    def count() -> None:
        m.purchases["sold_out"] += 1
        m.route("purchase").observe("sold_out", 0.00031)

    return timeit.timeit(count, number=N) / N


def prometheus() -> float:
    from prometheus_client import CollectorRegistry, Counter, Histogram  # noqa: PLC0415

    registry = CollectorRegistry()
    c = Counter("p", "p", ["result"], registry=registry)
    h = Histogram("d_seconds", "d", ["route", "result"], registry=registry)

    def count() -> None:
        c.labels("sold_out").inc()
        h.labels("purchase", "sold_out").observe(0.00031)

    return timeit.timeit(count, number=N) / N


def main() -> int:
    if len(sys.argv) > 1:
        print(ours() if sys.argv[1] == "ours" else prometheus())
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for label, which, env in (
            ("flashsale tallies (on the loop)", "ours", {}),
            ("prometheus_client Counter + Histogram", "prom", {}),
            ("prometheus_client, multiprocess mode", "prom", {"PROMETHEUS_MULTIPROC_DIR": d}),
        ):
            out = subprocess.run(
                [sys.executable, __file__, which], capture_output=True, text=True, check=True, env={**env, "PATH": ""}
            ).stdout
            rows.append((label, float(out) * 1e6))
    for label, us in rows:
        print(f"{label:40} {us:6.2f} µs per purchase")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
