"""Prometheus text for ``GET /metrics``: counters kept on the loop, gauges read at scrape."""

from __future__ import annotations

from collections import Counter

from flashsale import SaleEngine


class Metrics:
    """Counts of purchase results and HTTP errors, bumped by the handlers."""

    __slots__ = ("errors", "purchases")

    def __init__(self) -> None:
        self.purchases: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def render(self, engine: SaleEngine) -> str:
        g = engine.gauges
        lines = [
            "# HELP flashsale_purchases_total Purchase answers by result.",
            "# TYPE flashsale_purchases_total counter",
            *(f'flashsale_purchases_total{{result="{r}"}} {n}' for r, n in sorted(self.purchases.items())),
            "# HELP flashsale_request_errors_total Requests refused before reaching the engine, by error code.",
            "# TYPE flashsale_request_errors_total counter",
            *(f'flashsale_request_errors_total{{error="{c}"}} {n}' for c, n in sorted(self.errors.items())),
            "# HELP flashsale_inflight Purchases waiting for an actor's answer.",
            "# TYPE flashsale_inflight gauge",
            f"flashsale_inflight {engine.inflight}",
            "# HELP flashsale_limiter_queued Purchases waiting their turn in a leaky bucket's queue.",
            "# TYPE flashsale_limiter_queued gauge",
            f"flashsale_limiter_queued {engine.limiter_gauges.queued}",
            "# HELP flashsale_writer_backlog Orders and restocks not yet committed.",
            "# TYPE flashsale_writer_backlog gauge",
            f"flashsale_writer_backlog {g.backlog}",
            "# HELP flashsale_store_commits_total Transactions committed by the order writer.",
            "# TYPE flashsale_store_commits_total counter",
            f"flashsale_store_commits_total {g.commits}",
            "# HELP flashsale_orders_committed_total Orders committed to the store.",
            "# TYPE flashsale_orders_committed_total counter",
            f"flashsale_orders_committed_total {g.orders_committed}",
            "# HELP flashsale_store_failures_total Transactions that failed to commit.",
            "# TYPE flashsale_store_failures_total counter",
            f"flashsale_store_failures_total {g.failures}",
            "# HELP flashsale_sku_remaining Units left to sell, per SKU.",
            "# TYPE flashsale_sku_remaining gauge",
        ]
        for sku in engine.config.skus:
            v = engine.view(sku.id)
            lines.append(f'flashsale_sku_remaining{{sku="{sku.id}"}} {v.remaining}')
        lines += [
            "# HELP flashsale_ready_check Each /readyz check: 1 passing, 0 failing.",
            "# TYPE flashsale_ready_check gauge",
            *(f'flashsale_ready_check{{check="{c}"}} {int(ok)}' for c, ok in engine.readiness().items()),
        ]
        lines += _key_lines(engine)
        sink = engine.sink_gauges
        if sink is not None:
            lines += [
                "# HELP flashsale_sink_pending Order stream entries read and not yet written to PostgreSQL.",
                "# TYPE flashsale_sink_pending gauge",
                f"flashsale_sink_pending {sink.pending}",
                "# HELP flashsale_sink_committed_total Stream entries written to PostgreSQL and acknowledged.",
                "# TYPE flashsale_sink_committed_total counter",
                f"flashsale_sink_committed_total {sink.committed}",
                "# HELP flashsale_sink_failures_total Failed PostgreSQL or Redis calls of the order sink.",
                "# TYPE flashsale_sink_failures_total counter",
                f"flashsale_sink_failures_total {sink.failures}",
                "# HELP flashsale_sink_reclaimed_total Entries taken over from a consumer that went idle.",
                "# TYPE flashsale_sink_reclaimed_total counter",
                f"flashsale_sink_reclaimed_total {sink.reclaimed}",
                "# HELP flashsale_sink_rejected_total Malformed entries kept in order_rejects.",
                "# TYPE flashsale_sink_rejected_total counter",
                f"flashsale_sink_rejected_total {sink.rejected}",
            ]
        return "\n".join(lines) + "\n"


def _key_lines(engine: SaleEngine) -> list[str]:
    """The idempotency key table's fill and refusals (memory backend: the dedup actor's table)."""
    k = engine.key_gauges
    if k is None:
        return []
    return [
        "# HELP flashsale_idempotency_keys Live idempotency keys (in flight, or holding a reserved order).",
        "# TYPE flashsale_idempotency_keys gauge",
        f"flashsale_idempotency_keys {k.live}",
        "# HELP flashsale_idempotency_keys_max The key table's size (limits.max_idempotency_keys).",
        "# TYPE flashsale_idempotency_keys_max gauge",
        f"flashsale_idempotency_keys_max {k.capacity}",
        "# HELP flashsale_idempotency_keys_refused_total New keys refused, by the bound that refused them.",
        "# TYPE flashsale_idempotency_keys_refused_total counter",
        *(f'flashsale_idempotency_keys_refused_total{{bound="{b}"}} {n}' for b, n in sorted(k.refused.items())),
        "# HELP flashsale_idempotency_keys_evicted_total Settled keys of the biggest holder forgotten for a newcomer.",
        "# TYPE flashsale_idempotency_keys_evicted_total counter",
        f"flashsale_idempotency_keys_evicted_total {k.evicted}",
    ]
