"""What a replay decided: :class:`ReplayResult`, its summary, expectations and JSON form."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ._format import Scenario

Decision = tuple[int, int, str, str | None, str | None, int, str | None, str, str | None, int | None]
"""One decision as in the digest: ``[index, at_us, op, user, sku, qty, key, result, order_id, retry_after_us]``."""


@dataclass(frozen=True, slots=True)
class SkuSummary:
    """One SKU at the end of a replay, with its purchases by result."""

    sku: str
    stock: int
    sold: int
    paid: int
    remaining: int
    outcomes: dict[str, int]


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay decided: counts, timing and the digest.

    ``outcomes`` counts purchases by result; ``classes`` the same per user
    class (generator name, or ``traffic``); ``ops`` counts ``"pay:paid"``,
    ``"cancel:cancelled"`` … ; ``per_user_max`` is the most units one buyer
    held at once, per SKU; ``users`` the purchase results of the buyers the
    scenario's expectations name; ``log`` every decision, when asked for.
    """

    scenario: str
    digest: str
    decisions: int
    purchases: int
    skus: dict[str, SkuSummary]
    outcomes: dict[str, int]
    classes: dict[str, dict[str, int]]
    ops: dict[str, int]
    expired: int
    per_user_max: dict[str, int]
    users: dict[str, tuple[str, ...]]
    virtual_seconds: float
    wall_seconds: float
    log: tuple[Decision, ...] = field(default=(), repr=False)

    @property
    def decisions_per_second(self) -> float:
        return self.decisions / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def failures(self, scenario: Scenario) -> list[str]:
        """Each expectation of ``scenario`` that does not hold, said plainly; empty when all hold."""
        e = scenario.expect
        failed: list[str] = []

        def same(what: str, want: object, got: object) -> None:
            if want != got:
                failed.append(f"{what}: expected {want}, got {got}")

        for sku, want in e.sold.items():
            same(f"sold[{sku}]", want, self.skus[sku].sold)
        for sku, want in e.paid.items():
            same(f"paid[{sku}]", want, self.skus[sku].paid)
        for sku, want in e.remaining.items():
            same(f"remaining[{sku}]", want, self.skus[sku].remaining)
        for result, want in e.outcomes.items():
            same(f"outcomes[{result}]", want, self.outcomes.get(result, 0))
        for sku, want in e.per_user_max.items():
            same(f"per_user_max[{sku}]", want, self.per_user_max.get(sku, 0))
        for user, results in e.users.items():
            same(f"users[{user}]", list(results), list(self.users.get(user, ())))
        for name, want in e.ops.items():
            same(f"ops[{name}]", want, self.ops.get(name, 0))
        if e.expired is not None:
            same("expired", e.expired, self.expired)
        if e.digest is not None:
            same("digest", e.digest, self.digest)
        return failed

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain JSON values (``flashsale replay --json``)."""
        return {
            "scenario": self.scenario,
            "digest": self.digest,
            "decisions": self.decisions,
            "purchases": self.purchases,
            "outcomes": self.outcomes,
            "skus": {
                s.sku: {
                    "stock": s.stock,
                    "sold": s.sold,
                    "paid": s.paid,
                    "remaining": s.remaining,
                    "outcomes": s.outcomes,
                }
                for s in self.skus.values()
            },
            "classes": self.classes,
            "ops": self.ops,
            "expired": self.expired,
            "per_user_max": self.per_user_max,
            "users": {u: list(r) for u, r in self.users.items()},
            "virtual_seconds": self.virtual_seconds,
            "wall_seconds": round(self.wall_seconds, 6),
            "decisions_per_second": round(self.decisions_per_second),
        }

    def summary(self) -> str:
        """A readable report: per SKU, per user class, operations, timing and the digest."""
        lines = [f"scenario   {self.scenario}"]
        rows: list[tuple[str, ...]] = [("sku", "stock", "sold", "paid", "remaining", "purchases by result")]
        rows += [
            (s.sku, f"{s.stock:,}", f"{s.sold:,}", f"{s.paid:,}", f"{s.remaining:,}", _counts(s.outcomes))
            for s in self.skus.values()
        ]
        lines += ["", *_table(rows)]
        rows = [("class", "purchases", "by result")]
        rows += [(c, f"{sum(o.values()):,}", _counts(o)) for c, o in self.classes.items()]
        lines += ["", *_table(rows), ""]
        if self.ops:
            lines.append(f"operations {_counts(self.ops)}")
        lines.append(f"expired    {self.expired:,} reservations")
        if self.per_user_max:
            lines.append(f"per user   most units one buyer held: {_counts(self.per_user_max)}")
        lines.append(
            f"timing     {self.decisions:,} decisions over {self.virtual_seconds:,.3f} s of sale time"
            f" in {self.wall_seconds:.3f} s ({self.decisions_per_second:,.0f} decisions/s)"
        )
        lines.append(f"digest     {self.digest}")
        return "\n".join(lines)


def _counts(counts: dict[str, int]) -> str:
    return " · ".join(f"{k} {v:,}" for k, v in counts.items()) or "-"


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]).rstrip() for r in rows]
