"""The replay driver: feedback on virtual time, ticks on the grid, pay and cancel, the digest, --check."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from flashsale import parse_scenario, replay
from flashsale.transport import main
from tests.ids import untag_log


def scenario(config: dict[str, Any], **top: Any) -> Any:
    return parse_scenario(json.dumps({"flashsale_scenario": 1, "config": config, **top}), "t.json")


async def test_retries_wait_for_the_answer_and_the_back_off() -> None:
    """A rate-limited buyer retries at answer time + max(back-off, retry_after), and the digest encodes it."""
    s = scenario(
        {"sku": [{"id": "a", "stock": 5}], "limits": {"global": {"rate": 1, "burst": 1}}},
        generators=[
            {
                "name": "c",
                "seed": 1,
                "users": 2,
                "sku": "a",
                "arrival": {"pattern": "uniform", "duration": 0},
                "retry": {"max": 2, "backoff": 0.1, "on": ["rate_limited"]},
            }
        ],
    )
    result = await replay(s, keep_log=True)
    assert tuple(untag_log(result.log)) == (
        (0, 0, "purchase", "c-1", "a", 1, None, "reserved", "a-1", None),
        (1, 0, "purchase", "c-2", "a", 1, None, "rate_limited", None, 1_000_000),
        (2, 1_000_000, "purchase", "c-2", "a", 1, None, "reserved", "a-2", None),
    )
    canonical = b"flashsale-replay-digest/1\n" + b"".join(orjson.dumps(d) + b"\n" for d in result.log)
    assert result.digest == "sha256:" + hashlib.sha256(canonical).hexdigest()
    assert result.classes == {"c": {"reserved": 2, "rate_limited": 1}}


async def test_time_reaches_the_writer_on_the_tick_grid() -> None:
    """Reservations expire at the first tick at or after their deadline; pay, cancel and restock are decisions."""
    s = scenario(
        {"sku": [{"id": "a", "stock": 3, "payment_timeout": 10}], "engine": {"tick_interval": 1}},
        traffic=[
            {"at": 0.5, "user": "u1", "sku": "a"},
            {"at": 0.5, "user": "u2", "sku": "a"},
            {"at": 1, "user": "u3", "sku": "a"},
            {"at": 2, "op": "cancel", "order": "a-3"},
            {"at": 5, "op": "pay", "user": "u2", "sku": "a"},
            {"at": 5, "op": "pay", "user": "u4", "sku": "a"},
            {"at": 10.8, "user": "u5", "sku": "a"},
            {"at": 10.9, "user": "u6", "sku": "a"},
            {"at": 11, "user": "u7", "sku": "a"},
            {"at": 12, "op": "restock", "sku": "a", "qty": 2},
            {"at": 12, "op": "expire"},
        ],
        expect={"users": {"u6": ["sold_out"]}},
    )
    result = await replay(s, keep_log=True)
    assert [d[1:] for d in untag_log(result.log)] == [
        (500_000, "purchase", "u1", "a", 1, None, "reserved", "a-1", None),
        (500_000, "purchase", "u2", "a", 1, None, "reserved", "a-2", None),
        (1_000_000, "purchase", "u3", "a", 1, None, "reserved", "a-3", None),
        (2_000_000, "cancel", None, None, 0, None, "cancelled", "a-3", None),
        (5_000_000, "pay", "u2", "a", 0, None, "paid", "a-2", None),
        (5_000_000, "pay", "u4", "a", 0, None, "no_reservation", None, None),
        (10_800_000, "purchase", "u5", "a", 1, None, "reserved", "a-4", None),
        (10_900_000, "purchase", "u6", "a", 1, None, "sold_out", None, None),
        (11_000_000, "expire", None, None, 1, None, "expired", "a-1", None),
        (11_000_000, "purchase", "u7", "a", 1, None, "reserved", "a-5", None),
        (12_000_000, "restock", None, "a", 2, None, "restocked", None, None),
        (12_000_000, "expire", None, None, 0, None, "expired", None, None),
    ]
    assert result.expired == 1
    assert result.ops == {"cancel:cancelled": 1, "pay:no_reservation": 1, "pay:paid": 1, "restock:restocked": 1}
    sku = result.skus["a"]
    assert (sku.stock, sku.sold, sku.paid, sku.remaining) == (5, 3, 1, 2)
    assert result.users == {"u6": ("sold_out",)}
    assert result.failures(s) == []


async def test_follow_ups_and_an_overdue_payment() -> None:
    """A crowd's payers pay after the delay; a payment after the deadline (before a tick) expires the order."""
    s = scenario(
        {"sku": [{"id": "a", "stock": 10, "payment_timeout": 5}], "engine": {"tick_interval": 0}},
        generators=[
            {
                "name": "c",
                "seed": 3,
                "users": 4,
                "sku": "a",
                "arrival": {"pattern": "uniform", "duration": 0},
                "pay": {"fraction": 1, "after": 6},
            }
        ],
        traffic=[{"at": 1, "user": "v", "sku": "a"}, {"at": 2, "op": "pay", "user": "v", "sku": "a"}],
    )
    result = await replay(s, keep_log=True)
    assert result.ops == {"pay:expired": 4, "pay:paid": 1}
    assert untag_log(result.log)[-1][1:] == (6_000_000, "pay", "c-4", "a", 0, None, "expired", "a-4", None)
    assert result.expired == 4
    assert (result.skus["a"].sold, result.skus["a"].paid, result.skus["a"].remaining) == (1, 1, 9)


async def test_keyed_and_plain_purchases_of_one_instant_keep_their_order() -> None:
    """Repeated replays of a mixed instant (keys, no keys, one SKU without a limit) decide identically."""
    s = scenario(
        {"sku": [{"id": "a", "stock": 3}]},
        generators=[
            {
                "name": "keyed",
                "seed": 1,
                "users": 50,
                "sku": "a",
                "keys": "per_user",
                "arrival": {"pattern": "uniform", "duration": 0},
            },
            {"name": "plain", "seed": 2, "users": 50, "sku": "a", "arrival": {"pattern": "uniform", "duration": 0}},
        ],
        traffic=[{"at": 0, "user": "first", "sku": "a"}],
    )
    digests = {(await replay(s)).digest for _ in range(5)}
    assert len(digests) == 1
    result = await replay(s, keep_log=True)
    assert [d[3] for d in result.log if d[7] == "reserved"] == ["first", "keyed-1", "keyed-2"]


def test_check_names_what_failed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--check exits 1 and lists each expectation that does not hold; --json carries the same list."""
    path = tmp_path / "wrong.json"
    path.write_text(
        json.dumps(
            {
                "flashsale_scenario": 1,
                "config": {"sku": [{"id": "a", "stock": 1}]},
                "traffic": [{"at": 0, "user": "u", "sku": "a"}, {"at": 1, "user": "w", "sku": "a"}],
                "expect": {"sold": {"a": 2}, "outcomes": {"reserved": 1}, "users": {"w": ["reserved"]}},
            }
        )
    )
    assert main(["replay", str(path), "--check"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-3:] == [
        "check      FAILED (wrong.json)",
        "  failed   sold[a]: expected 2, got 1",
        "  failed   users[w]: expected ['reserved'], got ['sold_out']",
    ]
    assert main(["replay", str(path), "--check", "--json"]) == 1
    check = orjson.loads(capsys.readouterr().out)["check"]
    assert check == {
        "ok": False,
        "failures": ["sold[a]: expected 2, got 1", "users[w]: expected ['reserved'], got ['sold_out']"],
    }
    assert main(["replay", str(path)]) == 0  # without --check, expectations are not judged


def test_cli_reports_a_malformed_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed file exits 2 with the file, place and problem on stderr."""
    path = tmp_path / "bad.json"
    path.write_text('{"flashsale_scenario": 1, "config": {"sku": [{"id": "a", "stock": 1}]}, "traffic": [{"at": 0}]}')
    assert main(["replay", str(path), "--check"]) == 2
    assert capsys.readouterr().err == f"flashsale: {path}: traffic[0]: a 'purchase' event needs 'user'\n"


async def test_leaky_queue_answers_each_purchase_when_its_turn_comes() -> None:
    """Queue mode on virtual time: queued buyers are answered at their release instants, a full queue at once."""
    s = scenario(
        {
            "sku": [{"id": "a", "stock": 3}],
            "limits": {"per_sku": {"algorithm": "leaky", "rate": 10, "burst": 1, "queue": 3}},
        },
        generators=[{"name": "c", "seed": 1, "users": 6, "sku": "a", "arrival": {"pattern": "uniform", "duration": 0}}],
        traffic=[{"at": 0.15, "user": "late", "sku": "a"}],
    )
    first = await replay(s, keep_log=True)
    assert tuple(untag_log(first.log)) == (
        (0, 0, "purchase", "c-1", "a", 1, None, "reserved", "a-1", None),
        (1, 0, "purchase", "c-5", "a", 1, None, "overloaded", None, None),
        (2, 0, "purchase", "c-6", "a", 1, None, "overloaded", None, None),
        (3, 100_000, "purchase", "c-2", "a", 1, None, "reserved", "a-2", None),
        (4, 200_000, "purchase", "c-3", "a", 1, None, "reserved", "a-3", None),
        (5, 300_000, "purchase", "c-4", "a", 1, None, "sold_out", None, None),
        (6, 400_000, "purchase", "late", "a", 1, None, "sold_out", None, None),  # queued behind c-3 and c-4
    )
    assert (await replay(s)).digest == first.digest
