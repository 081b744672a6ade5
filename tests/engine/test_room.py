"""The waiting room through the embedded API on virtual time: determinism, bounds, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from flashsale import Config, EngineClosed, InvalidRequest, ManualClock, MemoryOrderStore, SaleEngine, SkuConfig
from flashsale.config import RoomConfig
from flashsale.room import RoomRefused, UnknownTicket
from flashsale.transport import main

T0 = 1_767_225_600_000_000  # ManualClock's default start

STARTS = T0 + 10_000_000
SEED = bytes(range(32))


def _config(**room: object) -> Config:
    return Config(
        skus=(SkuConfig("a", 10),),
        tick_interval=0.0,
        waiting_room=RoomConfig(starts_at=STARTS, opens_at=T0, **room),  # type: ignore[arg-type]
    )


async def _run(seed: bytes | None, users: int = 30) -> tuple[str, tuple[str, ...], list[tuple[str, ...]]]:
    """Join ``users`` buyers, draw, tick 3 s; return the commitment, the draw and each tick's admissions."""
    clock = ManualClock(T0)
    engine = SaleEngine(_config(admit_rate=3.0, admit_burst=2), store=MemoryOrderStore(), clock=clock, room_seed=seed)
    await engine.start()
    try:
        for n in range(users):
            await engine.join(f"u{n}")
        clock.set(STARTS)
        ticks = []
        for _ in range(30):
            ticks.append((await engine.room_tick()).admitted)
            clock.advance(0.1)
        draw = engine.room_draw()
        return draw.commitment, draw.tickets, ticks
    finally:
        await engine.stop()


async def test_the_same_seed_gives_the_same_room() -> None:
    """With a room_seed (a replay) ticket ids, the draw and every admission repeat exactly."""
    first, second = await _run(SEED), await _run(SEED)
    assert first == second
    assert first[0] == "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd"  # sha256(bytes(range(32)))
    other = await _run(bytes(32))
    assert other[1] != first[1]


async def test_a_live_room_draws_its_seed_from_a_csprng() -> None:
    """Without a room_seed every start commits to a different seed, and ticket ids differ."""
    a, b = await _run(None, 3), await _run(None, 3)
    assert a[0] != b[0]
    assert set(a[1]).isdisjoint(b[1])


async def test_embedded_errors(tmp_path: Path) -> None:
    """Bad users are InvalidRequest; another buyer's ticket is UnknownTicket; a sale without a room has no room."""
    engine = SaleEngine(_config(), store=MemoryOrderStore(), clock=ManualClock(T0))
    await engine.start()
    try:
        for bad in ("", 5, "x" * 129, "a\x00b"):
            with pytest.raises(InvalidRequest):
                await engine.join(bad)  # type: ignore[arg-type]
        ticket, created = await engine.join("alice")
        assert created
        with pytest.raises(UnknownTicket):
            engine.ticket(ticket.ticket, "bob")
        with pytest.raises(RoomRefused) as refused:
            engine.room_challenge()
        assert (refused.value.code, refused.value.status) == ("no_challenge", 404)
        with pytest.raises(InvalidRequest):
            await engine.set_admit_rate(0)
        assert engine.room_status().waiting == 1
    finally:
        await engine.stop()
    plain = SaleEngine(Config(skus=(SkuConfig("a", 1),)), store=MemoryOrderStore())
    assert not plain.has_room
    assert plain.check_pass(None, "anyone") == ("", "")
    with pytest.raises(EngineClosed):
        plain.room_status()


async def test_passes_signed_with_the_secret_file_check_everywhere(tmp_path: Path) -> None:
    """Two engines with one secret_file and one seed (two workers) accept each other's passes."""
    key = tmp_path / "room.key"
    key.write_bytes(b"0123456789abcdef0123456789abcdef")
    clock = ManualClock(STARTS)
    engines = [
        SaleEngine(_config(secret_file=str(key)), store=MemoryOrderStore(), clock=clock, room_seed=SEED)
        for _ in range(2)
    ]
    for e in engines:
        await e.start()
    try:
        ticket, _ = await engines[0].join("alice")
        await engines[0].room_tick()
        token = engines[0].ticket(ticket.ticket, "alice").admission_pass
        assert token is not None
        assert engines[1].check_pass(token, "alice") == ("", "")
        assert engines[1].check_pass(token, "bob")[0] == "invalid_pass"
    finally:
        for e in engines:
            await e.stop()


async def test_a_short_secret_file_is_refused(tmp_path: Path) -> None:
    """A secret_file under 16 bytes, or missing, stops the start with the reason."""
    from flashsale import Unavailable  # noqa: PLC0415

    short = tmp_path / "short.key"
    short.write_bytes(b"abc")
    for path in (short, tmp_path / "missing.key"):
        engine = SaleEngine(_config(secret_file=str(path)), store=MemoryOrderStore())
        with pytest.raises(Unavailable, match="secret_file"):
            await engine.start()
        await engine.stop()


def test_workers_with_a_room_need_its_secret_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--workers 2 with a waiting room but no secret_file exits 2 and says why: each would sign with its own key."""
    path = tmp_path / "sale.toml"
    path.write_text(
        'backend = "redis"\n[[sku]]\nid = "a"\nstock = 1\n[waiting_room]\nstarts_at = 2026-11-12T00:00:00Z\n',
        encoding="utf-8",
    )
    assert main(["serve", "--config", str(path), "--workers", "2", "--port", "8089"]) == 2
    assert "needs waiting_room.secret_file" in capsys.readouterr().err


def test_the_room_scenario_replays_to_its_pinned_digest(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/examples/waiting-room-drop.json: its draw, admissions and sales replay to the pinned digest, twice."""
    path = Path(__file__).resolve().parents[2] / "docs" / "examples" / "waiting-room-drop.json"
    for _ in range(2):
        assert main(["replay", str(path), "--check"]) == 0
        assert capsys.readouterr().out.splitlines()[-1] == "check      ok (waiting-room-drop.json)"
