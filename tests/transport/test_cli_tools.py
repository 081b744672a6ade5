"""``flashsale postgres-setup``: prints the cluster's SQL, and refuses names it would have to quote."""

from __future__ import annotations

import pytest

from flashsale.transport import main


def test_postgres_setup_prints_role_and_database(capsys: pytest.CaptureFixture[str]) -> None:
    """A login role with its password (quotes doubled) and a database it owns."""
    assert main(["postgres-setup", "--role", "shop", "--database", "sales", "--password", "it's"]) == 0
    assert capsys.readouterr().out == "CREATE ROLE shop LOGIN PASSWORD 'it''s';\nCREATE DATABASE sales OWNER shop;\n"


def test_postgres_setup_defaults_and_no_password(capsys: pytest.CaptureFixture[str]) -> None:
    """Without options: role and database ``flashsale``, no password (peer or trust authentication)."""
    assert main(["postgres-setup"]) == 0
    assert capsys.readouterr().out == "CREATE ROLE flashsale LOGIN;\nCREATE DATABASE flashsale OWNER flashsale;\n"


@pytest.mark.parametrize("name", ["Shop", "a-b", "1x", "a;DROP", ""])
def test_postgres_setup_refuses_names_that_need_quoting(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A role or database name outside ``[a-z_][a-z0-9_]*`` is exit 2 with the reason, and no SQL."""
    assert main(["postgres-setup", "--role", name]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith(f"flashsale: --role {name!r}: use 1-63 of a-z 0-9 _")
