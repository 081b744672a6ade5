"""``flashsale postgres-setup``: the SQL that creates the role and database a cluster's order sink writes to.

It only prints; pipe it into ``psql`` as a superuser. The role owns the
database, so it may create the schema the workers migrate at start (since
PostgreSQL 15 the ``public`` schema belongs to the database owner). Running
it twice is harmless: PostgreSQL refuses the second ``CREATE`` with an error
and changes nothing.
"""

from __future__ import annotations

import argparse
import re
import sys

_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``postgres-setup`` on the ``flashsale`` command."""
    setup = sub.add_parser(
        "postgres-setup",
        help="print the SQL that creates the PostgreSQL role and database of backend = 'redis' (pipe it into psql)",
    )
    setup.add_argument("--role", default="flashsale", help="the role the workers connect as (default flashsale)")
    setup.add_argument("--database", default="flashsale", help="the database the orders go to (default flashsale)")
    setup.add_argument("--password", help="the role's password (default: none; for peer or trust authentication)")


def setup_sql(role: str, database: str, password: str | None) -> str:
    """``CREATE ROLE`` and ``CREATE DATABASE ... OWNER``; raises ValueError for a name that would need quoting."""
    for what, name in (("role", role), ("database", database)):
        if not _NAME.fullmatch(name):
            raise ValueError(f"--{what} {name!r}: use 1-63 of a-z 0-9 _ (starting with a letter or _)")
    login = "LOGIN" if password is None else "LOGIN PASSWORD '" + password.replace("'", "''") + "'"
    return f"CREATE ROLE {role} {login};\nCREATE DATABASE {database} OWNER {role};\n"


def run(args: argparse.Namespace) -> int:
    try:
        print(setup_sql(args.role, args.database, args.password), end="")
    except ValueError as exc:
        print(f"flashsale: {exc}", file=sys.stderr)
        return 2
    return 0
