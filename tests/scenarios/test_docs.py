"""docs/scenarios.md's complete example is a real scenario: it loads, and every expectation holds."""

from __future__ import annotations

import re
from pathlib import Path

from flashsale import parse_scenario, replay

DOC = Path(__file__).resolve().parents[2] / "docs" / "scenarios.md"


async def test_the_complete_example_replays_with_check() -> None:
    """The JSON block parses, uses every part of the format, and --check passes, digest included."""
    block = re.search(r"```json\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert block is not None
    scenario = parse_scenario(block.group(1), "docs/scenarios.md")
    assert {e.op for e in scenario.events} == {"purchase", "pay", "restock", "expire"}
    assert scenario.generators
    assert scenario.expect.digest is not None
    assert (await replay(scenario)).failures(scenario) == []
