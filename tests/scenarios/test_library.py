"""Every file in scenarios/ replays with its expectations holding, and the same digest twice.

docs/architecture.md invariant 6 (deterministic replay). Each file pins its digest in
``expect.digest``, so ``--check`` also proves that this machine decides
exactly what the machine that wrote the file decided.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from flashsale import load_scenario, replay
from flashsale.transport import main

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
FILES = sorted(SCENARIOS.glob("*.json*"))


def test_the_library_is_complete() -> None:
    """At least eight scenarios, each pinning a digest."""
    assert len(FILES) >= 8
    for path in FILES:
        assert load_scenario(path).expect.digest is not None, path.name


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_check_passes_and_digest_repeats(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``flashsale replay FILE --check`` exits 0; a second replay gives the same digest and counts."""
    assert main(["replay", str(path), "--check", "--json"]) == 0
    first = orjson.loads(capsys.readouterr().out)
    assert first["check"] == {"ok": True, "failures": []}
    scenario = load_scenario(path)
    second = asyncio.run(replay(scenario)).as_dict()
    assert second["digest"] == first["digest"] == scenario.expect.digest
    timing = {"wall_seconds", "decisions_per_second", "check"}
    assert {k: v for k, v in second.items() if k not in timing} == {k: v for k, v in first.items() if k not in timing}


def test_cli_prints_a_readable_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --json: per SKU and per class tables, timing, the digest and the check verdict."""
    path = SCENARIOS / "restock-mid-sale.json"
    assert main(["replay", str(path), "--check"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "scenario   restock-mid-sale"
    assert "hoodie  175    175   0     0          reserved 175 · sold_out 1,926" in out  # stock counts restocks
    assert "opening  1,500      reserved 100 · sold_out 1,400" in out
    assert "operations restock:restocked 2" in out
    assert out[-2] == f"digest     {load_scenario(path).expect.digest}"
    assert out[-1] == "check      ok (restock-mid-sale.json)"
